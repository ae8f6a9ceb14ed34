"""Template helpers of the patient's record: French typography and the measure charts."""

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeData, mark_safe

from health_record import charts

register = template.Library()

NBSP, NNBSP = "\u00a0", "\u202f"
_BEFORE_COLON = re.compile(r"[ \u00a0\u202f]*:(?=\s|$)")
_BEFORE_TALL = re.compile(r"[ \u00a0\u202f]*([;!?»])")
_AFTER_GUILLEMET = re.compile(r"«[ \u00a0\u202f]*")
_MARKUP = re.compile(r"(<[^>]*>|&#?\w+;)")


def french_typography(text: str) -> str:
    """Non-breaking spaces where French typography wants them: before « : » (no-break space),
    before ; ! ? » and after « (narrow no-break space). Times such as 10:30 are left alone."""
    if not text:
        return ""
    text = _BEFORE_COLON.sub(NBSP + ":", text)
    text = _BEFORE_TALL.sub(lambda m: NNBSP + m.group(1), text)
    text = _AFTER_GUILLEMET.sub("«" + NNBSP, text)
    return text


@register.filter(name="fr")
def fr_filter(value):
    """French typography on plain text, then escaped. Safe markup (template literals included)
    gets it between its tags and entities only."""
    if isinstance(value, SafeData):
        parts = _MARKUP.split(str(value))
        return mark_safe("".join(p if _MARKUP.fullmatch(p) else french_typography(p) for p in parts))  # noqa: S308
    return escape(french_typography("" if value is None else str(value)))


@register.simple_tag
def measure_chart(row, id_prefix="chart", compact=False):
    return charts.measure_chart(row, id_prefix=id_prefix, compact=compact)


@register.filter
def nbsp(value):
    """Keep a phone number on one line: its spaces become no-break spaces."""
    return escape(("" if value is None else str(value)).replace(" ", NBSP))
