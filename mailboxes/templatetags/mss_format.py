"""How dates read on both sides (issue 16 item 8): French month names, local time, one style.

`{% load mss_format %}` then `{{ when|fr_date }}` ("29 novembre 2026"), `{{ when|fr_datetime }}`
("29 novembre 2026 à 10:05") and, for lists, `{{ when|fr_short }}` ("29 nov. 2026, 10:05").
Sizes need no filter of their own: the project's catalogue makes Django's `filesizeformat`
write "Ko"/"Mo" (locale/fr), in templates and in Python messages alike.
"""

import datetime

from django import template
from django.utils import dateformat, timezone

register = template.Library()


def _local(value):
    if isinstance(value, datetime.datetime) and timezone.is_aware(value):
        return timezone.localtime(value)
    return value


def _format(value, fmt: str) -> str:
    if value in (None, ""):
        return ""
    return dateformat.format(_local(value), fmt)


@register.filter
def fr_date(value) -> str:
    """ "29 novembre 2026" (a date or a datetime, read in local time)."""
    return _format(value, "j F Y")


@register.filter
def fr_datetime(value) -> str:
    """ "29 novembre 2026 à 10:05"."""
    return _format(value, r"j F Y \à H:i")


@register.filter
def fr_short(value) -> str:
    """ "29 nov. 2026, 10:05" for lists; a date alone reads "29 nov. 2026"."""
    if isinstance(value, datetime.datetime):
        return _format(value, "j N Y, H:i")
    return _format(value, "j N Y")
