"""Sign-in, failed sign-in and sign-out leave audit events (RULES.md §5; issue 15 item 21).

A wrong second-factor code (TOTP or recovery code) is a failed sign-in too: allauth's
`authentication_failed` signal records it with `via: second_factor` (or `reauthentication`).
Django sends its signals for every way in: the password form (allauth calls Django's
`authenticate` and `login`), Pro Santé Connect (allauth's social login calls `login`). (The
admin's own login form is not served: /admin/login/ leads to the sign-in page, mssante/urls.py.)
The events carry the account id when one is known and the client's address behind the trusted
proxy; never the login typed (a mistyped e-mail address is personal data), only whether it
matched an account.
"""

from allauth.mfa.signals import authentication_failed
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.events import record
from audit.models import AuditEvent


def _via(request) -> str:
    path = getattr(request, "path", "") or ""
    if "/oidc/" in path or "/3rdparty/" in path or "/openid_connect/" in path:
        return "oidc"
    return "password"


@receiver(user_logged_in, dispatch_uid="accounts_audit_login")
def audit_login(sender, request, user, **kwargs):
    record(
        AuditEvent.Action.LOGIN,
        actor=user,
        object_type="user",
        object_id=user.pk,
        request=request,
        detail={"via": _via(request)},
    )


@receiver(user_logged_out, dispatch_uid="accounts_audit_logout")
def audit_logout(sender, request, user, **kwargs):
    if user is None:
        return
    record(AuditEvent.Action.LOGOUT, actor=user, object_type="user", object_id=user.pk, request=request)


@receiver(user_login_failed, dispatch_uid="accounts_audit_login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    login = (credentials or {}).get("username") or (credentials or {}).get("email") or ""
    User = get_user_model()
    user_id = None
    if login:
        match = (
            User.objects.filter(username__iexact=login)
            if "@" not in login
            else User.objects.filter(email__iexact=login)
        )
        user_id = match.values_list("pk", flat=True).first()
    record(
        AuditEvent.Action.LOGIN_FAILED,
        actor_id=user_id,
        actor_label="" if user_id else "inconnu",
        object_type="user",
        object_id=user_id or "",
        outcome="failed",
        detail={"via": _via(request), "known_account": user_id is not None},
        request=request,
    )


@receiver(authentication_failed, dispatch_uid="accounts_audit_second_factor_failed")
def audit_second_factor_failed(sender, request, user, authenticator=None, reauthentication=False, **kwargs):
    """The password was right, the code was not: the account is known, the sign-in failed."""
    record(
        AuditEvent.Action.LOGIN_FAILED,
        actor_id=user.pk,
        object_type="user",
        object_id=user.pk,
        outcome="failed",
        detail={"via": "reauthentication" if reauthentication else "second_factor", "known_account": True},
        request=request,
    )
