def portal(request):
    """Which portal the page belongs to, for the shared base template."""
    user = getattr(request, "user", None)
    is_patient = bool(user and user.is_authenticated and user.is_patient)
    return {"portal_is_patient": is_patient}
