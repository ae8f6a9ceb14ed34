"""App passwords (issue 11 §3): a professional with two-factor login cannot type a one-time code
into Thunderbird or practice software, so each client gets its own password, made here.

A secret is 16 characters drawn from 31 unambiguous letters and digits (about 79 bits), shown
once as `abcd-efgh-jkmn-pqrs` and kept as the SHA-256 of its normalised form: random secrets of
that length need no slow hash, and a login compares one digest with one indexed query.
Creating and revoking leave audit events (ids only).
"""

from __future__ import annotations

import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import AppPassword
from audit.events import record
from audit.models import AuditEvent

ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
LENGTH = 16
MAX_PER_USER = 20


def normalise(secret: str) -> str:
    return "".join(c for c in (secret or "").lower() if c.isalnum())


def digest_of(secret: str) -> str:
    return hashlib.sha256(normalise(secret).encode("utf-8")).hexdigest()


def looks_like_app_password(secret: str) -> bool:
    value = normalise(secret)
    return len(value) == LENGTH and all(c in ALPHABET for c in value)


def format_secret(raw: str) -> str:
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


@transaction.atomic
def create_app_password(user, name: str, ip: str | None = None) -> tuple[AppPassword, str]:
    """A new app password: the row and the secret, which is never shown again."""
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError(_("Donnez un nom à ce mot de passe (par exemple « Thunderbird du cabinet »)."))
    if len(name) > 100:
        raise ValidationError(_("Le nom compte au plus 100 caractères."))
    if AppPassword.objects.filter(user=user).count() >= MAX_PER_USER:
        raise ValidationError(
            _("Vous avez déjà %(n)d mots de passe d'application : révoquez-en un avant d'en créer un autre.")
            % {"n": MAX_PER_USER}
        )
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    row = AppPassword.objects.create(user=user, name=name, digest=digest_of(raw))
    record(AuditEvent.Action.APP_PASSWORD_CREATED, actor=user, obj=row, ip=ip)
    return row, format_secret(raw)


@transaction.atomic
def revoke_app_password(user, app_password_id, ip: str | None = None) -> bool:
    row = AppPassword.objects.filter(user=user, pk=app_password_id).first()
    if row is None:
        return False
    record(AuditEvent.Action.APP_PASSWORD_REVOKED, actor=user, obj=row, ip=ip)
    row.delete()
    return True


def match_app_password(user, secret: str) -> AppPassword | None:
    """The user's app password with this secret (its last use is set now), or None."""
    if not looks_like_app_password(secret):
        return None
    row = AppPassword.objects.filter(user=user, digest=digest_of(secret)).first()
    if row is not None:
        AppPassword.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return row


def app_password_exists(app_password_id: int) -> bool:
    return AppPassword.objects.filter(pk=app_password_id).exists()
