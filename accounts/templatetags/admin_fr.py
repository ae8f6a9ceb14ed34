"""The admin's yes/no icons, named in French (issue 16 item 12).

Django draws a boolean as an icon whose text (`alt`, what a screen reader says) is the Python
value, "True", "False" or "None", untranslated. The admin's list rows and read-only fields go
through `french_icons`, which names these icons « oui », « non », « inconnu »."""

from django import template
from django.templatetags.static import static
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

ICONS = (("yes", True, "oui"), ("no", False, "non"), ("unknown", None, "inconnu"))


@register.filter
def french_icons(html):
    if not isinstance(html, SafeString):
        return html  # text, escaped by the template: it holds no icon
    for icon, value, label in ICONS:
        src = static(f"admin/img/icon-{icon}.svg")
        html = html.replace(f'<img src="{src}" alt="{value}">', f'<img src="{src}" alt="{label}">')
    return mark_safe(html)  # noqa: S308 - the safe HTML it was given, three fixed attributes changed
