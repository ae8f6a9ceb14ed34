from allauth.account.decorators import reauthentication_required
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST


@login_required
def home(request):
    """After login: a patient lands on their inbox, an administrator (staff) on the operations
    dashboard, everyone else on their mailboxes."""
    if request.user.is_patient:
        return redirect("patients:inbox")
    if request.user.is_staff:
        return redirect("operations:dashboard")
    return redirect("webmail:home")


def _client_ip(request) -> str | None:
    """The client's address behind the trusted proxy (issue 15 item 19), as the audit trail has it."""
    from audit.events import client_ip

    return client_ip(request)


def _professional_with_mfa(request):
    """App passwords are for professionals; where a second factor is required, it comes first
    (an app password must never be a way around it)."""
    from allauth.mfa.utils import is_mfa_enabled
    from django.conf import settings
    from django.http import Http404

    if request.user.is_patient:
        raise Http404
    if settings.MFA_REQUIRED_FOR_PROFESSIONALS and not is_mfa_enabled(request.user):
        return redirect("mfa_activate_totp")
    return None


@login_required
def app_passwords(request, created=None, secret=None, error=None):
    """The security page's list of app passwords (issue 11 §3)."""
    from django.conf import settings
    from django.shortcuts import render

    from accounts.models import AppPassword

    redirect_to = _professional_with_mfa(request)
    if redirect_to is not None:
        return redirect_to
    return render(
        request,
        "account/app_passwords.html",
        {
            "rows": AppPassword.objects.filter(user=request.user).order_by("-created_at"),
            "created": created,
            "secret": secret,
            "error": error,
            "imap_host": settings.CLIENTS_PUBLIC_HOST or request.get_host().split(":")[0],
            "imap_port": settings.CLIENTS_PUBLIC_IMAP_PORT,
            "submission_port": settings.CLIENTS_PUBLIC_SUBMISSION_PORT,
        },
        status=400 if error else 200,
    )


@login_required
@require_POST
@reauthentication_required
def app_password_create(request):
    """Make one and show its secret on this answer only (never stored in the session)."""
    from django.core.exceptions import ValidationError

    from accounts.app_passwords import create_app_password

    redirect_to = _professional_with_mfa(request)
    if redirect_to is not None:
        return redirect_to
    try:
        row, secret = create_app_password(request.user, request.POST.get("name", ""), ip=_client_ip(request))
    except ValidationError as exc:
        return app_passwords(request, error=" ".join(exc.messages))
    response = app_passwords(request, created=row, secret=secret)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def app_password_revoke(request, pk):
    from django.contrib import messages
    from django.http import Http404
    from django.utils.translation import gettext as _

    from accounts.app_passwords import revoke_app_password

    if request.user.is_patient or not revoke_app_password(request.user, pk, ip=_client_ip(request)):
        raise Http404("Mot de passe d'application introuvable")
    messages.success(
        request, _("Le mot de passe d'application est révoqué : les clients qui l'utilisaient sont déconnectés.")
    )
    return redirect("app_passwords")


@login_required
@require_POST
def session_keepalive(request):
    """ "Rester connecté" in the inactivity warning: the request itself is the activity."""
    return HttpResponse(status=204)


@require_POST
def session_expired(request):
    """The page's countdown reached the end (a professional's draft was saved just before): sign
    out, if the server has not already (its `portail` field says which sign-in notice)."""
    from django.contrib.auth import logout

    from accounts.middleware import expired_login_url

    target = expired_login_url(request.user, request.POST.get("portail", ""))
    logout(request)
    return redirect(target)
