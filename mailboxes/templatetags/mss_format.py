"""How dates read on both sides (issue 16 item 8): French month names, local time, one style.

`{% load mss_format %}` then `{{ when|fr_date }}` ("29 novembre 2026"), `{{ when|fr_datetime }}`
("29 novembre 2026 à 10 h 05"), `{{ when|fr_long }}` ("dimanche 29 novembre 2026 à 10 h 05") and,
for lists, `{{ when|fr_short }}` ("29 nov. 2026, 10 h 05");
`{{ when|fr_precise }}` ("29/11/2026 à 10 h 05 min 09 s") where the second matters (a delivery's
steps, the audit trail). Each is built on the named formats of the active language
(mssante/formats/fr/formats.py: a time of day reads "10 h 05", as in the messages the product
writes), so a page and a message never disagree; elsewhere templates use the names themselves
(`|time`, `|date:"SHORT_DATETIME_FORMAT"`).
Sizes need no filter of their own: the project's catalogue makes Django's `filesizeformat`
write "Ko"/"Mo" (locale/fr), in templates and in Python messages alike.
"""

import datetime

from django import template
from django.utils import dateformat, timezone
from django.utils.formats import get_format

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
    return _format(value, get_format("DATE_FORMAT"))


@register.filter
def fr_datetime(value) -> str:
    """ "29 novembre 2026 à 10 h 05"."""
    return _format(value, get_format("DATETIME_FORMAT"))


@register.filter
def fr_long(value) -> str:
    """ "dimanche 29 novembre 2026 à 10 h 05": the day's name too, as convocations write it."""
    return _format(value, r"l j F Y \à " + get_format("TIME_FORMAT"))


@register.filter
def fr_short(value) -> str:
    """ "29 nov. 2026, 10 h 05" for lists; a date alone reads "29 nov. 2026"."""
    if isinstance(value, datetime.datetime):
        return _format(value, "j N Y, " + get_format("TIME_FORMAT"))
    return _format(value, "j N Y")


@register.filter
def fr_precise(value) -> str:
    """ "29/11/2026 à 10 h 05 min 09 s": the short date and time, to the second."""
    return _format(value, get_format("SHORT_DATETIME_FORMAT") + r" \m\i\n s \s")
