from django import template

from directory.views import paper_badge

register = template.Library()


@register.filter
def paper(entry):
    return paper_badge(entry)
