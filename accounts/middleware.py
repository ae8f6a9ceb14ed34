"""Professionals must enrol a second factor when MFA_REQUIRED_FOR_PROFESSIONALS is on (RULES.md §5),
and sessions end after a period of inactivity (issue 15 item 22)."""

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


LAST_ACTIVITY_KEY = "mss_last_activity"
# The session is written at most this often for activity alone (not on every request).
ACTIVITY_GRANULARITY = 30


def inactivity_timeout(user) -> int:
    """Seconds of inactivity after which this user's session ends (0: no limit but the cookie's)."""
    if user.is_patient:
        return settings.SESSION_INACTIVITY_TIMEOUT_PATIENT
    return settings.SESSION_INACTIVITY_TIMEOUT


def expired_login_url(user, portal: str = "") -> str:
    """The sign-in page that says the session ended: `?expiree=1` also tells a professional that
    the message being written is in the drafts (the webmail saved it); `?expiree=2` does not,
    for a patient, whose composer keeps no draft. Already signed out (a request of the page
    reached the server past the timeout first), the page's own `portal` says which."""
    from django.urls import reverse

    if user is not None and user.is_authenticated:
        professional = not user.is_patient
    else:
        professional = portal == "pro"
    return reverse("account_login") + ("?expiree=1" if professional else "?expiree=2")


def start_activity_clock(sender, request, user, **kwargs) -> None:
    """Signing in is activity (connected to `user_logged_in` in AccountsConfig.ready): the first
    page after it then has nothing to write in the session."""
    import time

    if request is not None and hasattr(request, "session"):
        request.session[LAST_ACTIVITY_KEY] = int(time.time())


class InactivityTimeoutMiddleware:
    """Issue 15 item 22: a session without any request for the timeout (30 min for
    professionals by default) ends; the next request lands on the login page, which says why.
    Pages warn before (session-timeout.js) and have the composer save its draft first, so an
    expiry never loses what was being written."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        import time

        from django.contrib.auth import logout
        from django.http import HttpResponse

        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            timeout = inactivity_timeout(user)
            if timeout:
                now = int(time.time())
                last = request.session.get(LAST_ACTIVITY_KEY)
                if last is not None and now - last > timeout:
                    target = expired_login_url(user)
                    logout(request)
                    if request.headers.get("HX-Request"):
                        response = HttpResponse(status=204)
                        response["HX-Redirect"] = target
                        return response
                    if request.method != "GET" or request.path.startswith("/api/"):
                        return HttpResponse("Session expirée.", status=401, content_type="text/plain; charset=utf-8")
                    return redirect(target)
                if last is None or now - last >= ACTIVITY_GRANULARITY:
                    request.session[LAST_ACTIVITY_KEY] = now
        return self.get_response(request)


class IdentityProviderUnavailableMiddleware:
    """Issue 15 item 23: when Pro Santé Connect (the OpenID provider) cannot be reached during a
    sign-in, say so in French and offer the password + second factor login, instead of a raw
    error page. Only the provider's own sign-in paths are concerned."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        import logging

        import requests
        from django.shortcuts import render

        if not request.path.startswith("/comptes/oidc/"):
            return None
        if not isinstance(exception, requests.RequestException):
            return None
        logging.getLogger("accounts").warning("identity provider unreachable: %s", type(exception).__name__)
        retry = request.path if request.path.endswith("/login/") else None
        return render(request, "account/psc_unavailable.html", {"retry_url": retry}, status=503)
