"""Professionals must enrol a second factor when MFA_REQUIRED_FOR_PROFESSIONALS is on (RULES.md §5)."""

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.shortcuts import redirect

ALLOWED_PREFIXES = ("/comptes/", "/static/", "/healthz", "/readyz", "/metrics")


class RequireProfessionalMFAMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            settings.MFA_REQUIRED_FOR_PROFESSIONALS
            and user is not None
            and user.is_authenticated
            and not user.is_patient
            and not request.path.startswith(ALLOWED_PREFIXES)
            and not is_mfa_enabled(user)
        ):
            return redirect("mfa_activate_totp")
        return self.get_response(request)
