"""Who may log in over IMAP and SMTP submission (issue 11 §3; RULES.md §5 strong authentication).

- The login names an account: its username, its e-mail, or the address of its nominative box.
  Patients never log in here (their boxes are never reachable by a mail client).
- The secret is an app password of that account (accounts/app_passwords.py), or the account
  password itself only when the account has no second factor and professionals are not
  required to have one (MFA_REQUIRED_FOR_PROFESSIONALS): a second factor cannot be typed into a
  mail client, so the password alone would bypass it.
- With Pro Santé Connect configured, SASL OAUTHBEARER / XOAUTH2 carry a PSC access token
  (clients/psc.py), mapped to the account linked to that PSC identity.
- Failures are counted per account and per IP address (Django cache, CLIENTS_AUTH_* settings):
  past a few free attempts, each new one must wait a growing delay (1 s, 2 s, 4 s … up to a
  cap); an attempt made before the delay is over is refused without looking at the secret.
- An account that reaches no box (staff, a professional whose boxes are all gone) is refused
  once its secret is checked (`no_mailbox`: IMAP `NO [NOPERM]`, SMTP `535 5.7.8`, with the
  reason), rather than logged in to an empty account.
- Every attempt leaves an audit event: `login` or `login.failed` with the protocol, the method
  and a reason code; ids only, never the login typed.
- A session opened stays open only while its login would still be accepted (`session_standing`,
  asked by the IMAP and submission servers at each command the client sends): the account
  exists and is active, the app password is not revoked, a password login still has the password
  it was opened with and no second factor since, and the session's boxes are still reached. When
  not, the server ends the session and `end_session` leaves a `session.ended` event (reason code,
  ids only).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.core.cache import cache
from django.db.models import Q

from accounts.app_passwords import app_password_exists, match_app_password
from audit.events import record
from audit.models import AuditEvent
from mailboxes.models import Mailbox

log = logging.getLogger("clients.auth")
_DUMMY_HASH: list[str] = []


class LoginRefused(Exception):
    """A refused login. `text` is said to the client (ASCII French), `reason` is the audit code.
    `imap_code` is the IMAP response code of the refusal (RFC 5530)."""

    def __init__(self, reason: str, text: str, throttled: bool = False, imap_code: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.text = text
        self.throttled = throttled
        self.imap_code = imap_code or ("UNAVAILABLE" if throttled else "AUTHENTICATIONFAILED")


DEFAULT_REFUSAL = "Identifiant ou mot de passe incorrect"
NO_MAILBOX = (
    "Aucune boite aux lettres n'est rattachee a ce compte : demandez a l'administrateur de votre "
    "structure de vous en attribuer une"
)
APP_PASSWORD_NEEDED = (
    "Ce compte utilise une double authentification : connectez-vous avec un mot de passe "
    "d'application cree sur la page Securite de votre compte"
)


@dataclass(frozen=True)
class Login:
    user: object
    method: str  # "app_password", "password", "psc_token"
    app_password_id: int | None
    primary: str  # the box named at login (SASL authorisation identity), or ""
    protocol: str
    # For a password login: Django's session hash of the account password it was opened with
    # (`get_session_auth_hash`), so that a password change ends the session.
    password_hash: str = ""


# --- who is it ------------------------------------------------------------------------------------


def find_user(login: str):
    """The account a login names, or None."""
    login = (login or "").strip()
    if not login or len(login) > 254:
        return None
    User = get_user_model()
    user = User.objects.filter(username__iexact=login).first()
    if user is None and "@" in login:
        box = (
            Mailbox.objects.filter(address=login.lower(), kind=Mailbox.Kind.NOMINATIVE, owner__user__isnull=False)
            .select_related("owner__user")
            .first()
        )
        if box is not None:
            user = box.owner.user
        else:
            users = list(User.objects.filter(Q(email__iexact=login))[:2])
            user = users[0] if len(users) == 1 else None
    return user


def password_login_allowed(user) -> bool:
    return not is_mfa_enabled(user) and not settings.MFA_REQUIRED_FOR_PROFESSIONALS


# --- throttling ------------------------------------------------------------------------------------


def _keys(user_id, ip) -> list[str]:
    keys = []
    if user_id:
        keys.append(f"clients-auth:user:{user_id}")
    if ip:
        keys.append(f"clients-auth:ip:{ip}")
    return keys


def throttled_until(user_id, ip) -> float:
    """The time before which no attempt for this account or from this address is looked at."""
    until = 0.0
    for key in _keys(user_id, ip):
        state = cache.get(key)
        if state:
            until = max(until, state[1])
    return until


def note_failure(user_id, ip) -> None:
    now = time.time()
    for key in _keys(user_id, ip):
        count, _until = cache.get(key) or (0, 0.0)
        count += 1
        extra = count - settings.CLIENTS_AUTH_FREE_FAILURES
        delay = 0.0 if extra <= 0 else min(2.0 ** (extra - 1), settings.CLIENTS_AUTH_MAX_DELAY)
        cache.set(key, (count, now + delay), settings.CLIENTS_AUTH_WINDOW)


def note_success(user_id) -> None:
    cache.delete_many(_keys(user_id, None))


# --- checks ------------------------------------------------------------------------------------


def _audit(ok: bool, user, protocol: str, method: str, ip, reason: str = "", app_password_id=None) -> None:
    detail = {"protocol": protocol, "method": method}
    if app_password_id:
        detail["app_password"] = app_password_id
    if reason:
        detail["reason"] = reason
    record(
        AuditEvent.Action.LOGIN if ok else AuditEvent.Action.LOGIN_FAILED,
        actor=user,
        actor_label=protocol,
        outcome="ok" if ok else reason[:40],
        detail=detail,
        ip=ip,
    )
    log.info(
        "%s login %s: user=%s method=%s reason=%s",
        protocol,
        "ok" if ok else "refused",
        getattr(user, "pk", None),
        method,
        reason,
    )


def _refuse(user, protocol, method, ip, reason, text=DEFAULT_REFUSAL, count=True, imap_code="") -> LoginRefused:
    if count:
        note_failure(getattr(user, "pk", None), ip)
    _audit(False, user, protocol, method, ip, reason)
    return LoginRefused(reason, text, imap_code=imap_code)


def _check_account(user, protocol: str, method: str, ip) -> None:
    if not user.is_active:
        raise _refuse(user, protocol, method, ip, "inactive")
    if user.is_patient:
        raise _refuse(
            user,
            protocol,
            method,
            ip,
            "patient",
            "Les comptes patients ne se connectent pas par un client de messagerie",
        )


def _throttle(user, protocol, method, ip) -> None:
    if throttled_until(getattr(user, "pk", None), ip) > time.time():
        _audit(False, user, protocol, method, ip, "throttled")
        raise LoginRefused("throttled", "Trop d'essais manques : reessayez dans quelques instants", throttled=True)


def check_password_login(login: str, secret: str, *, protocol: str, ip: str | None, authzid: str = "") -> Login:
    """LOGIN, AUTHENTICATE PLAIN / LOGIN, SMTP AUTH PLAIN / LOGIN."""
    user = find_user(login)
    _throttle(user, protocol, "password", ip)
    if user is None:
        if not _DUMMY_HASH:
            _DUMMY_HASH.append(make_password("not a password"))
        check_password(secret or "", _DUMMY_HASH[0])  # as long as a real check
        raise _refuse(None, protocol, "password", ip, "unknown_login")
    _check_account(user, protocol, "password", ip)
    app_password = match_app_password(user, secret)
    if app_password is not None:
        primary = _primary(user, authzid, login, protocol, "app_password", ip)
        return _accept(user, protocol, "app_password", ip, primary, app_password.pk)
    if not user.check_password(secret or ""):
        raise _refuse(user, protocol, "password", ip, "bad_password")
    if not password_login_allowed(user):
        raise _refuse(user, protocol, "password", ip, "app_password_required", APP_PASSWORD_NEEDED)
    primary = _primary(user, authzid, login, protocol, "password", ip)
    return _accept(user, protocol, "password", ip, primary, None, password_hash=user.get_session_auth_hash())


def check_token_login(token: str, *, login: str, protocol: str, ip: str | None, authzid: str = "") -> Login:
    """SASL OAUTHBEARER / XOAUTH2 with a Pro Santé Connect access token. The login or
    authorisation identity, when given, must be the account's username or a box it reaches."""
    from clients import psc

    _throttle(None, protocol, "psc_token", ip)
    try:
        user = psc.user_for_token(token)
    except psc.InvalidToken as exc:
        raise _refuse(None, protocol, "psc_token", ip, f"token_{exc.code}", "Jeton Pro Sante Connect refuse") from None
    _throttle(user, protocol, "psc_token", ip)
    _check_account(user, protocol, "psc_token", ip)
    named = (login or "").strip().lower()
    if named and "@" not in named and named != user.username.lower():
        raise _refuse(user, protocol, "psc_token", ip, "token_other_user", "Ce jeton appartient a un autre compte")
    return _accept(user, protocol, "psc_token", ip, _primary(user, authzid, login, protocol, "psc_token", ip), None)


def _primary(user, authzid: str, login: str, protocol: str, method: str, ip) -> str:
    """The box the client asked to act as (SASL authorisation identity, else a login that is a
    box address): it must be one the account reaches, as in the webmail."""
    from webmail.selectors import pro_mailboxes

    asked = (authzid or "").strip().lower()
    if asked and asked != user.username.lower():
        if not pro_mailboxes(user).filter(address=asked).exists():
            raise _refuse(
                user, protocol, method, ip, "authzid_not_allowed", "Cette boite aux lettres ne vous est pas accessible"
            )
        return asked
    named = (login or "").strip().lower()
    return named if "@" in named and pro_mailboxes(user).filter(address=named).exists() else ""


def _check_boxes(user, protocol: str, method: str, ip) -> None:
    """An account that reaches no box of the webmail (a staff account, a professional whose
    boxes were all closed or taken away) has nothing to read or send from: its login is refused
    with the reason (`no_mailbox`), not accepted onto an empty account. The secret was right,
    so the refusal does not count towards the throttling of wrong guesses."""
    from webmail.selectors import pro_mailboxes

    if not pro_mailboxes(user).exists():
        raise _refuse(user, protocol, method, ip, "no_mailbox", NO_MAILBOX, count=False, imap_code="NOPERM")


def _accept(user, protocol: str, method: str, ip, primary: str, app_password_id, password_hash: str = "") -> Login:
    _check_boxes(user, protocol, method, ip)
    note_success(user.pk)
    _audit(True, user, protocol, method, ip, app_password_id=app_password_id)
    return Login(
        user=user,
        method=method,
        app_password_id=app_password_id,
        primary=primary,
        protocol=protocol,
        password_hash=password_hash,
    )


# --- an open session -------------------------------------------------------------------------

SESSION_ENDED_TEXTS = {
    "account_deleted": "Ce compte n'existe plus",
    "inactive": "Ce compte a ete desactive",
    "app_password_revoked": "Mot de passe d'application revoque : reconnectez-vous",
    "password_changed": "Le mot de passe du compte a change : reconnectez-vous avec le nouveau",
    "app_password_required": APP_PASSWORD_NEEDED,
    "no_mailbox": NO_MAILBOX,
    "mailbox_lost": "Cette boite aux lettres ne vous est plus accessible : reconnectez-vous",
}


@dataclass(frozen=True)
class Standing:
    """What `session_standing` found: `reason` is "" while the session may go on, else a key of
    SESSION_ENDED_TEXTS; `boxes` are those of the boxes asked about that the account still reaches."""

    reason: str
    boxes: frozenset[int] = frozenset()


def _account_reason(user, login: Login) -> str:
    if user is None:
        return "account_deleted"
    if not user.is_active:
        return "inactive"
    if login.method == "app_password" and not app_password_exists(login.app_password_id):
        return "app_password_revoked"
    if login.method == "password":
        if login.password_hash != user.get_session_auth_hash():
            return "password_changed"
        if not password_login_allowed(user):
            return "app_password_required"
    return ""


def session_standing(login: Login, box_ids=None) -> Standing:
    """Whether a session opened by `login` may go on (two or three indexed queries). With
    `box_ids` (the boxes the session shows or sends from), which of them the account still
    reaches by the webmail's rule; without, only whether it reaches any box."""
    from webmail.selectors import pro_mailboxes

    user = get_user_model().objects.filter(pk=login.user.pk).first()
    reason = _account_reason(user, login)
    if reason:
        return Standing(reason)
    boxes = pro_mailboxes(user)
    if box_ids is None:
        return Standing("" if boxes.exists() else "no_mailbox")
    reached = frozenset(boxes.filter(pk__in=list(box_ids)).values_list("pk", flat=True))
    if not reached and not boxes.exists():
        return Standing("no_mailbox")
    return Standing("", reached)


def end_session(login: Login, reason: str, ip, mailbox_id: int | None = None) -> str:
    """Record that the server ended a session whose access was withdrawn (`session.ended`,
    ids and the reason code only) and return the text said to the client."""
    detail = {"protocol": login.protocol, "method": login.method, "reason": reason}
    if login.app_password_id:
        detail["app_password"] = login.app_password_id
    record(
        AuditEvent.Action.SESSION_ENDED,
        actor_id=login.user.pk,
        actor_label=login.protocol,
        object_type="user",
        object_id=login.user.pk,
        mailbox_id=mailbox_id,
        outcome=reason[:40],
        detail=detail,
        ip=ip,
    )
    log.info(
        "%s session ended: user=%s method=%s reason=%s mailbox=%s",
        login.protocol,
        login.user.pk,
        login.method,
        reason,
        mailbox_id,
    )
    return SESSION_ENDED_TEXTS[reason]
