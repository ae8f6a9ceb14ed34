"""Who calls (issue 10 §2): an API key per box, optionally bound to IP networks and to a client
certificate forwarded by the reverse proxy; scopes; a rate limit per key.

The key travels as `Authorization: Bearer mss_<prefix>_<secret>`. It is looked up by its prefix
and compared by SHA-256 in constant time; it never reaches a log or an audit event (they name
the key's id). Mutual TLS: when `API_CLIENT_CERT_HEADER` is set, the proxy that ends TLS puts the
SHA-256 fingerprint of the verified client certificate in that header (docs/api.md); a key with a
fingerprint then needs that certificate, and a certificate alone may stand for its key.
"""

from __future__ import annotations

import hmac
import time

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import connection
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.formats import date_format
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.throttling import BaseThrottle

from api.hooks import BOX_HAS_WEBHOOK
from api.models import KEY_PREFIX, ApiKey, hash_secret, normalise_fingerprint
from audit.events import client_ip
from mailboxes.models import Folder, Mailbox


def fail(code: str, detail: str):
    return exceptions.AuthenticationFailed(detail, code)


def forwarded_fingerprint(request) -> str:
    header = settings.API_CLIENT_CERT_HEADER
    if not header:
        return ""
    return normalise_fingerprint(request.META.get("HTTP_" + header.upper().replace("-", "_"), ""))


def key_from_token(token: str) -> ApiKey:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise fail("invalid_key", "Clé d'API mal formée : « mss_<préfixe>_<secret> » attendu.")
    key = key_by_prefix(parts[1])
    if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(token)):
        raise fail("invalid_key", "Clé d'API inconnue.")
    return key


def _columns(model) -> list:
    return list(model._meta.concrete_fields)


KEY_FIELDS, BOX_FIELDS = _columns(ApiKey), _columns(Mailbox)
# Table and column names from the models; the prefix and the role are bound parameters. The last
# columns are the id of the box's SENT folder (one per box: `folder_system_role_unique`) and
# whether a key of the box has a webhook (api/hooks.py).
KEY_SQL = (
    "SELECT "  # noqa: S608
    + ", ".join([f'k."{f.column}"' for f in KEY_FIELDS] + [f'b."{f.column}"' for f in BOX_FIELDS])
    + f', (SELECT f.id FROM "{Folder._meta.db_table}" f WHERE f.mailbox_id = b.id AND f.role = %s)'  # noqa: S608
    + ", "
    + BOX_HAS_WEBHOOK.format(box="b.id")
    + f' FROM "{ApiKey._meta.db_table}" k JOIN "{Mailbox._meta.db_table}" b ON b.id = k.mailbox_id WHERE k.prefix = %s'
)
# Rows read as PostgreSQL gives them need no conversion as long as no field converts its value.
KEY_SQL_USABLE = not any(hasattr(f, "from_db_value") for f in KEY_FIELDS + BOX_FIELDS)


def key_by_prefix(prefix: str) -> ApiKey | None:
    """The key of `prefix` (unique) with its box, read on every call: on PostgreSQL in SQL text
    written once (the ORM's compile of the join, every column of both models, was about a third
    of the API layer's own CPU; bench/RESULTS.md issue 10), the instances built with the
    documented `Model.from_db` as the ORM builds them; elsewhere through the ORM.

    The same query brings the id of the box's SENT folder, kept on the box as the delivery path
    keeps it (`sent_folder_id`, mailboxes/delivery/writing.py `folder_id`): a message sent with
    the key then needs no query of its own for its copy in SENT. A box without its folders
    (None) gets them from the delivery path, as before.

    And whether a key of the box has a webhook, kept on the key (`box_has_webhook`): the API's
    hooks then need no query of their own after the delivery (api/hooks.py `sender_known`)."""
    if connection.vendor != "postgresql" or not KEY_SQL_USABLE:
        # The prefix is unique: no ORDER BY (`.first()` would sort by the model's ordering).
        sent = Folder.objects.filter(mailbox_id=OuterRef("mailbox_id"), role=Folder.Role.SENT).values("id")
        webhook = ApiKey.objects.filter(mailbox_id=OuterRef("mailbox_id"), webhook_url__gt="")
        keys = ApiKey.objects.select_related("mailbox").filter(prefix=prefix).order_by()
        key = next(iter(keys.annotate(sent_folder=Subquery(sent[:1]), box_has_webhook=Exists(webhook))[:1]), None)
        if key is not None:
            keep_sent_folder(key.mailbox, key.sent_folder)
        return key
    with connection.cursor() as cursor:
        cursor.execute(KEY_SQL, [Folder.Role.SENT.value, prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    split, end = len(KEY_FIELDS), len(KEY_FIELDS) + len(BOX_FIELDS)
    key = ApiKey.from_db(connection.alias, [f.attname for f in KEY_FIELDS], row[:split])
    key.mailbox = Mailbox.from_db(connection.alias, [f.attname for f in BOX_FIELDS], row[split:end])
    keep_sent_folder(key.mailbox, row[end])
    key.box_has_webhook = bool(row[end + 1])
    return key


def keep_sent_folder(box: Mailbox, folder_id: int | None) -> None:
    if folder_id is not None:
        setattr(box, "sent_folder_id", folder_id)  # noqa: B010 - an attribute of this object only, not a field


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request).decode("latin-1")
        fingerprint = forwarded_fingerprint(request)
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise fail("invalid_key", "En-tête Authorization attendu : « Bearer <clé d'API> ».")
            key = key_from_token(token.strip())
        elif fingerprint:
            held = list(
                ApiKey.objects.select_related("mailbox").filter(
                    client_cert_fingerprint=fingerprint, revoked_at__isnull=True
                )[:20]
            )
            # A key that expired still holds its certificate: the call is told it expired (below),
            # unless a live key holds the certificate too (the key that replaces it).
            keys = [k for k in held if not k.is_expired] or held[:1]
            if not keys:
                raise fail("invalid_key", "Aucune clé d'API n'est associée à ce certificat client.")
            if len(keys) > 1:  # which box would be a guess: the key must say
                raise fail(
                    "invalid_key", "Plusieurs clés d'API portent ce certificat client : envoyez la clé (Authorization)."
                )
            key = keys[0]
        else:
            return None
        check_key(key, request, fingerprint)
        touch(key)
        return AnonymousUser(), key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


def check_key(key: ApiKey, request, fingerprint: str) -> None:
    if key.revoked_at is not None:
        raise fail("key_revoked", "Cette clé d'API a été révoquée.")
    if key.is_expired:
        when = date_format(timezone.localtime(key.expires_at), "SHORT_DATETIME_FORMAT")
        raise fail(
            "key_expired",
            f"Cette clé d'API a expiré le {when} : demandez une nouvelle clé à l'administrateur de la messagerie.",
        )
    if not key.mailbox.is_active:
        raise exceptions.PermissionDenied("La boîte aux lettres de cette clé est désactivée.", "mailbox_inactive")
    if not key.ip_allowed(request_ip(request)):
        raise exceptions.PermissionDenied("Cette clé n'est pas autorisée depuis cette adresse IP.", "ip_not_allowed")
    if key.client_cert_fingerprint and not hmac.compare_digest(key.client_cert_fingerprint, fingerprint):
        raise exceptions.PermissionDenied(
            "Cette clé exige le certificat client qui lui est associé.", "certificate_required"
        )


def request_ip(request) -> str | None:
    """The client's address (`audit.events.client_ip`), worked out once per call: the key's
    allow-list and the call's audit event both need it."""
    if not hasattr(request, "api_client_ip"):
        request.api_client_ip = client_ip(request)
    return request.api_client_ip


def touch(key: ApiKey) -> None:
    """`last_used_at`, written at most once a minute per key."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timezone.timedelta(seconds=60))
        ).update(last_used_at=now)


class HasScope(BasePermission):
    """One of the view's `required_scopes` ("send", "read") must be one of the key's."""

    def has_permission(self, request, view):
        key = request.auth
        if not isinstance(key, ApiKey):
            raise exceptions.NotAuthenticated("Clé d'API requise : « Authorization: Bearer <clé> ».")
        scopes = getattr(view, "required_scopes", ("read",))
        if not set(scopes) & set(key.scopes):
            wanted = " ou ".join(f"« {s} »" for s in scopes)
            raise exceptions.PermissionDenied(f"Cette clé n'a pas la portée {wanted}.", "scope_missing")
        return True


class KeyRateThrottle(BaseThrottle):
    """A fixed one-minute window per key, counted in the cache (atomic `incr` on Redis)."""

    def allow_request(self, request, view):
        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        limit = key.rate_per_minute or settings.API_RATE_PER_MINUTE
        now = time.time()
        window = int(now // 60)
        cache_key = f"api-rate:{key.pk}:{window}"
        cache.add(cache_key, 0, 90)
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.set(cache_key, 1, 90)
            count = 1
        self._wait = (window + 1) * 60 - now
        return count <= limit

    def wait(self):
        return self._wait
