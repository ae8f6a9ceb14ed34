def portal(request):
    """Which portal the page belongs to, for the shared base template."""
    user = getattr(request, "user", None)
    is_patient = bool(user and user.is_authenticated and user.is_patient)
    return {"portal_is_patient": is_patient}


def session_timeout(request):
    """The inactivity timeout the page's script counts down (static/js/session-timeout.js)."""
    from accounts.middleware import inactivity_timeout

    user = getattr(request, "user", None)
    timeout = inactivity_timeout(user) if user is not None and user.is_authenticated else 0
    if not timeout:
        return {}
    from django.conf import settings

    return {"session_timeout": timeout, "session_warning": min(settings.SESSION_INACTIVITY_WARNING, timeout // 2)}
