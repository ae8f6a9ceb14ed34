"""Deployment checks of the accounts (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def second_factor_required(app_configs, **kwargs):
    """Issue 15 item 20: professionals sign in with a second factor (RULES.md §5)."""
    if settings.DEBUG or settings.MFA_REQUIRED_FOR_PROFESSIONALS:
        return []
    return [
        Warning(
            "MFA_REQUIRED_FOR_PROFESSIONALS is off: professionals can sign in with a password alone.",
            hint="Unset MFA_REQUIRED_FOR_PROFESSIONALS (it defaults to on when DEBUG is off) or set it to true.",
            id="accounts.W001",
        )
    ]
