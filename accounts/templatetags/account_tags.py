"""Small helpers of the account pages (two-factor onboarding, issue 16 item 11)."""

from django import template
from django.conf import settings

register = template.Library()


@register.filter
def group4(value) -> str:
    """ "JBSWY3DPEHPK3PXP" → "JBSW Y3DP EHPK 3PXP": a secret a person can read and type."""
    text = str(value or "")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


@register.simple_tag(takes_context=True)
def mfa_is_required(context) -> bool:
    """Is this person signing in required to set up two-factor authentication?"""
    user = getattr(context.get("request"), "user", None)
    return bool(
        settings.MFA_REQUIRED_FOR_PROFESSIONALS and user is not None and user.is_authenticated and not user.is_patient
    )
