"""Deployment checks of the operator's settings (`manage.py check --deploy`, and so the self-test)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Tags, Warning, register

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@register(Tags.security, deploy=True)
def site_url_is_public(app_configs, **kwargs):
    """Every link of an e-mail (invitations, patient notifications, inactivity warnings, the OIDC
    redirect) is built on SITE_URL; without it they point at http://127.0.0.1:$PORT."""
    if settings.DEBUG:
        return []
    url = urlsplit(settings.SITE_URL)
    if url.scheme == "https" and (url.hostname or "") not in LOOPBACK_HOSTS:
        return []
    return [
        Warning(
            f"SITE_URL is {settings.SITE_URL!r}: the links of e-mails (invitations, patient notifications, "
            "inactivity warnings) and the OpenID Connect redirect would not reach this service from outside.",
            hint="Set SITE_URL to the https:// name users reach, e.g. https://mss.example.fr (docs/configuration.md).",
            id="operations.W001",
        )
    ]


@register(Tags.database, deploy=True)
def database_is_a_server(app_configs, **kwargs):
    """Without DATABASE_URL a process runs on the local SQLite file of VAR_DIR (the embedded
    set-up of `scripts/run`): in production, a service that forgot the variable would keep its
    own mail apart from every other process's, without an error."""
    if settings.DEBUG or settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
        return []
    return [
        Warning(
            f"The database is the local SQLite file {settings.DATABASES['default']['NAME']}: DATABASE_URL is not "
            "set for this process, whose data would not be the other processes' (web, mail servers, worker).",
            hint="Set DATABASE_URL=postgres://… in the environment of every service (docs/configuration.md).",
            id="operations.W002",
        )
    ]
