"""The one way to write audit events. Callers pass ids, never content.

Every row is linked into the hash chain (audit/chain.py) in the transaction that inserts it:
`record` and `record_many` open their own (nested) transaction; `audit_rows` returns rows
already linked, for a caller that inserts them itself inside its open transaction (the
delivery path writes them with its other rows).
"""

import itertools
import logging
import threading
from datetime import date, datetime

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import transaction
from django.utils import timezone

from audit.chain import HeadMove, link, link_deferred
from audit.models import AuditChain, AuditEvent

log = logging.getLogger("audit")


def client_ip(request) -> str | None:
    """The client's address, as allauth's login rate limits see it: behind the reverse proxy,
    taken from the proxy header the settings trust (`TRUSTED_PROXY_COUNT` /
    `TRUSTED_CLIENT_IP_HEADER`, docs/configuration.md), never the proxy's own address."""
    if request is None:
        return None
    from allauth.account.adapter import get_adapter

    try:
        return get_adapter(request).get_client_ip(request)
    except (PermissionDenied, ImproperlyConfigured):
        return None


def record(
    action: str,
    *,
    actor=None,
    actor_id: int | None = None,
    actor_label: str = "",
    obj=None,
    object_type: str = "",
    object_id="",
    mailbox_id: int | None = None,
    message_id: int | None = None,
    outcome: str = "ok",
    detail: dict | None = None,
    ip: str | None = None,
    at: datetime | None = None,
    request=None,
) -> AuditEvent:
    """Write one event. With `request`, the client's address is taken from it (client_ip)."""
    if request is not None and ip is None:
        ip = client_ip(request)
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id or obj.pk
    if getattr(actor, "is_authenticated", False):
        actor_id = actor.pk
    fields = {"at": at} if at is not None else {}
    return AuditEvent.objects.create(
        action=action,
        actor_id=actor_id,
        actor_label=actor_label,
        object_type=object_type,
        object_id=str(object_id or ""),
        mailbox_id=mailbox_id,
        message_id=message_id,
        outcome=outcome,
        detail=detail or {},
        ip=ip,
        **fields,
    )


def audit_rows(events: list[dict]) -> list[AuditEvent]:
    """The unsaved rows of `events`, already linked into the chain: call it inside the
    transaction that inserts them (the chain head it took stays locked until that commit)."""
    rows = [AuditEvent(**e) for e in events]
    link(rows)
    return rows


def audit_rows_deferred(
    events: list[dict], taken: dict[date, AuditChain] | None = None
) -> tuple[list[AuditEvent], list[HeadMove]]:
    """`audit_rows` for a caller that writes the rows and the chain heads' moves in one
    statement of its own (the delivery path on PostgreSQL): the rows, linked, and the moves.
    `taken`: heads the caller already locked, by day (`audit.chain.free_head_value`)."""
    rows = [AuditEvent(**e) for e in events]
    return rows, link_deferred(rows, taken=taken)


def record_many(events: list[dict]) -> None:
    """Bulk variant for the delivery path (one INSERT for all recipients)."""
    AuditEvent.objects.bulk_create([AuditEvent(**e) for e in events])


# --- Events no caller may roll back (issue 15 item 15) ------------------------------------------
# A refusal or a security event must stay even when the caller's transaction rolls back (a view
# that wraps the send in `atomic` and gets DeliveryRefused). Inside a transaction the event is
# written there (committed with it, in its chain place) and remembered; `on_commit` forgets it.
# What is still remembered when the request or the Celery task ends was rolled back: it is
# written again then, in its own transaction (`write_rolled_back`, connected in audit/apps.py).
# Each task has a scope of its own (`open_task_scope`): a task run in process while a request's
# commit hooks run (the embedded runner) ends before the request's own hook has forgotten the
# request's events, which its end must not take for rolled back.

_remembered = threading.local()
_keys = itertools.count()
REMEMBERED_MAX = 1000


def _scopes() -> list[dict]:
    scopes = getattr(_remembered, "scopes", None)
    if scopes is None:
        scopes = _remembered.scopes = [{}]
    return scopes


def _waiting() -> dict:
    """The events remembered by the request or task running now on this thread."""
    return _scopes()[-1]


def record_lasting(action: str, **fields) -> None:
    """`record` for refusals and security events: recorded whatever the caller does."""
    if not transaction.get_connection().in_atomic_block:
        record(action, **fields)  # autocommit: committed now
        return
    record(action, **fields)
    waiting = _waiting()
    if len(waiting) >= REMEMBERED_MAX:  # a runner that never ends requests: keep the newest
        waiting.pop(next(iter(waiting)))
    key = next(_keys)
    waiting[key] = (action, {**fields, "at": timezone.now()})
    transaction.on_commit(lambda: waiting.pop(key, None))


def forget_remembered(**_kwargs) -> None:
    """request_started: nothing of an earlier request of this thread is pending any more."""
    _waiting().clear()


def open_task_scope(**_kwargs) -> None:
    """Celery task_prerun: the task remembers its own events, apart from those of a request or
    task whose commit hooks run it in process."""
    _scopes().append({})


def close_task_scope(**_kwargs) -> int:
    """Celery task_postrun: write the task's rolled-back events, then back to the outer scope."""
    written = write_rolled_back()
    scopes = _scopes()
    if len(scopes) > 1:
        scopes.pop()
    return written


def write_rolled_back(**_kwargs) -> int:
    """request_finished (and a task's end, `close_task_scope`): write the remembered events whose
    transaction rolled back. Inside a transaction still open (a test's), nothing is decided yet."""
    waiting = _waiting()
    if not waiting or transaction.get_connection().in_atomic_block:
        return 0
    items = list(waiting.values())
    waiting.clear()
    for action, fields in items:
        detail = {**(fields.pop("detail", None) or {}), "caller_rolled_back": True}
        record(action, detail=detail, **fields)
    log.warning("audit: %d event(s) written again after their transaction rolled back", len(items))
    return len(items)
