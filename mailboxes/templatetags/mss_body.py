"""`{% load mss_body %}{% shown_body message as body %}`: the bounded part of a message body that
a page shows (`mailboxes.shown_body`), with `body.text`, `body.html` and `body.cut`."""

from django import template

from mailboxes.shown_body import shown_body as bounded

register = template.Library()


@register.simple_tag
def shown_body(message):
    return bounded(message)
