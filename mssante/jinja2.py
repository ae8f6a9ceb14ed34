"""The Jinja2 environment of the few partials rendered by Jinja2 (settings.TEMPLATES).

Auto-escaping on, undefined names an error rather than an empty string (a typo in a partial
fails its tests instead of printing nothing), templates read once per process. Texts are
translated in Python and handed in, so `makemessages` finds them where it always does.
"""

from jinja2 import Environment, StrictUndefined


def environment(**options) -> Environment:
    options.pop("autoescape", None)
    options.setdefault("undefined", StrictUndefined)
    options["auto_reload"] = False
    return Environment(autoescape=True, **options)
