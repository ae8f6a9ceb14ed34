"""Links reversed once per process: `link()` in Python and `{% link %}` in templates (the
`links` library, settings.TEMPLATES). The pages of the webmail carry some twenty links each,
always the same ones, and reversing them was about a fifth of the list page's template time
(bench/RESULTS.md, issue 13). The script prefix and the URLconf are part of the key, so a
deployment under a sub-path or a request's own URLconf gets its own links.
"""

import functools

from django import template
from django.urls import get_script_prefix, get_urlconf, reverse

register = template.Library()


@functools.lru_cache(maxsize=4096)
def _reversed(name: str, args: tuple, prefix: str, urlconf) -> str:
    return reverse(name, args=args, urlconf=urlconf)


def link(name: str, *args) -> str:
    """`reverse(name, args=args)`, remembered."""
    return _reversed(name, args, get_script_prefix(), get_urlconf())


@register.simple_tag(name="link")
def link_tag(name: str, *args) -> str:
    """`{% link "webmail:folder" box.pk folder.pk %}`: `{% url %}`, remembered."""
    return link(name, *args)
