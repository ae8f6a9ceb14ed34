"""Queueing a task after the commit of the rows it works on, robustly (DESIGN.md "Background
work"; issue 15 item 14).

Every queue of the product is a table first: a row (Outbox, Notification, PendingReturn,
IncomingAction…) is written in the transaction that decides the work, its task only carries the
row's id, and a sweeper on the beat schedule re-queues rows whose task never ran. So a broker
that is down when the transaction commits is not the user's problem: the message is sent, the
page says so, the failure is logged with the task name and the id, and the sweeper queues the
row once the broker is back. Tasks are named (`celery.signature`), never imported, so services
and tasks import each other one way.
"""

from __future__ import annotations

import functools
import logging
import threading
from datetime import timedelta

from celery import signature
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from mssante.sql import column, table

log = logging.getLogger("mailboxes.queueing")

# What publishing raises when the broker cannot be reached (kombu wraps Redis' and AMQP's
# connection errors in OperationalError; a socket error may come through unwrapped).
BROKER_ERRORS = (OperationalError, OSError)


def enqueue(task_name: str, *args: int, queue: str | None = None, countdown: int | None = None) -> bool:
    """Queue `task_name(*args)` now (to run after `countdown` seconds). False, logged, when the
    broker is unreachable."""
    try:
        signature(task_name, args=args).apply_async(queue=queue or None, countdown=countdown)
    except BROKER_ERRORS as exc:
        log.warning(
            "task not queued: task=%s args=%s error=%s (its sweeper will queue it)",
            task_name,
            list(args),
            type(exc).__name__,
        )
        return False
    return True


def enqueue_on_commit(task_name: str, *args: int, queue: str | None = None) -> None:
    """Queue `task_name(*args)` once the current transaction commits (at once outside one)."""
    transaction.on_commit(functools.partial(enqueue, task_name, *args, queue=queue))


# Ids waiting for the commit of this thread's transaction, by (task name, queue).
_batches = threading.local()
BATCH_MAX_IDS = 500


def enqueue_together_on_commit(task_name: str, pk: int, queue: str | None = None) -> None:
    """Queue `task_name(pk)` once the current transaction commits, in one task with every other
    id given for that task and queue in the transaction: `task_name(*ids)`, so the task must take
    any number of ids (a campaign's chunk of 50 deliveries is one transaction; each publish
    costs the sender about 1 ms of CPU, bench/RESULTS.md issue 9). At once outside a transaction.

    Each id registers its own commit callback, and the first one to run publishes every id
    gathered so far: an id whose savepoint rolled back goes with them (its row does not exist,
    so the task's claim finds nothing), and no id depends on a callback that a rollback dropped."""
    if not transaction.get_connection().in_atomic_block:
        enqueue(task_name, pk, queue=queue)
        return
    pending = _batches.__dict__.setdefault("pending", {})
    pending.setdefault((task_name, queue), []).append(pk)
    transaction.on_commit(functools.partial(_publish_together, task_name, queue))


def _publish_together(task_name: str, queue: str | None) -> None:
    ids = _batches.__dict__.get("pending", {}).pop((task_name, queue), [])
    for start in range(0, len(ids), BATCH_MAX_IDS):
        enqueue(task_name, *ids[start : start + BATCH_MAX_IDS], queue=queue)


# --- The relay's discipline for the other queues of outgoing mail ------------------------------
# Notifications and automatic returns (patients app) keep their work in rows with the columns
# `status` (pending → sending → sent / failed), `attempts`, `updated_at`, `next_attempt_at` and
# `last_error`, like `Outbox` (mailboxes/relay.py), and share these steps and the relay's settings.

PENDING, SENDING = "pending", "sending"
SWEEP_BATCH = 1000


# `claim` and `finish` run for every notification (a patient gets one per message): their
# conditional UPDATEs are SQL text, whose compile by the ORM was most of the task's CPU, written
# once per model (and set of columns). Table and column names from the model, every value a bound
# parameter prepared by its field as the ORM prepares it.


@functools.cache
def _claim_sql(model) -> str:
    status, attempts, updated_at, due = (
        column(model, n) for n in ("status", "attempts", "updated_at", "next_attempt_at")
    )
    return (
        f"UPDATE {table(model)} SET {status} = %s, {attempts} = {attempts} + 1, {updated_at} = %s "  # noqa: S608
        f"WHERE {connection.ops.quote_name(model._meta.pk.column)} = %s AND {status} = %s "
        f"AND ({due} IS NULL OR {due} <= %s)"
    )


@functools.cache
def _finish_sql(model, names: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{column(model, name)} = %s" for name in names)
    return (
        f"UPDATE {table(model)} SET {assignments} "  # noqa: S608
        f"WHERE {connection.ops.quote_name(model._meta.pk.column)} = %s AND {column(model, 'status')} IN (%s, %s)"
    )


def _value(model, name: str, value):
    return model._meta.get_field(name).get_db_prep_save(value, connection)


# A state change that need not wait for its WAL flush (PostgreSQL's `synchronous_commit`, set
# for the statement's own transaction: "the behavior for any one transaction is determined by the
# setting in effect when it commits"). `set_config` is a condition of the UPDATE, so it has run
# whenever a row was changed. For queues whose work, should a database crash lose the change,
# is done again (at least once, never zero times), and whose duplicate harms nobody: the
# callers say so (`flush=False`); a message to a peer or a professional always waits.
UNFLUSHED = " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"


def _update_one(sql: str, params: list, flush: bool) -> bool:
    # Inside a transaction the setting would apply to the caller's whole transaction: flushed.
    if not flush and connection.vendor == "postgresql" and not connection.in_atomic_block:
        sql += UNFLUSHED
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount > 0


def claim(model, pk: int, *, flush: bool = True) -> bool:
    """pending → sending by a conditional UPDATE, when due: a duplicate task finds nothing.
    `flush=False`: the commit does not wait for the WAL flush (`UNFLUSHED`)."""
    now = timezone.now()
    due_by = now + timedelta(seconds=1)
    return _update_one(
        _claim_sql(model),
        [SENDING, _value(model, "updated_at", now), pk, PENDING, _value(model, "next_attempt_at", due_by)],
        flush,
    )


def backoff_seconds(attempts: int) -> int:
    base = settings.RELAY_RETRY_BASE_SECONDS
    return min(settings.RELAY_RETRY_MAX_SECONDS, base * 2 ** max(0, attempts - 1))


def retry_later(model, pk: int, attempts: int, error: str) -> int:
    """A temporary failure: back to pending, due after the backoff. Returns the seconds."""
    retry_in = backoff_seconds(attempts)
    now = timezone.now()
    model.objects.filter(pk=pk, status=SENDING).update(
        status=PENDING, next_attempt_at=now + timedelta(seconds=retry_in), last_error=error[:300], updated_at=now
    )
    return retry_in


def finish(model, pk: int, status: str, error: str = "", *, flush: bool = True, **fields) -> bool:
    """The final state. "pending" too: the sweeper may have taken the row back meanwhile.
    `flush` as for `claim`."""
    values = {
        "status": status,
        "next_attempt_at": None,
        "last_error": error[:300],
        "updated_at": timezone.now(),
        **fields,
    }
    params = [_value(model, name, value) for name, value in values.items()]
    return _update_one(_finish_sql(model, tuple(values)), [*params, pk, SENDING, PENDING], flush)


def sweep(model, task_name: str, queue: str | None = None) -> dict[str, int]:
    """Put back in line the rows a killed worker left in "sending" (after
    RELAY_SENDING_TIMEOUT_SECONDS) and queue, after commit, the pending rows that are due and
    whose task was lost (after RELAY_SWEEP_GRACE_SECONDS)."""
    now = timezone.now()
    stuck_before = now - timedelta(seconds=settings.RELAY_SENDING_TIMEOUT_SECONDS)
    grace = timedelta(seconds=settings.RELAY_SWEEP_GRACE_SECONDS)
    stuck_ids = list(
        model.objects.filter(status=SENDING, updated_at__lt=stuck_before).values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    stuck = 0
    if stuck_ids:
        stuck = model.objects.filter(pk__in=stuck_ids, status=SENDING, updated_at__lt=stuck_before).update(
            status=PENDING, next_attempt_at=now, updated_at=now, last_error="worker lost during send"
        )
    due = Q(next_attempt_at__isnull=True, updated_at__lte=now - grace) | Q(next_attempt_at__lte=now - grace)
    if stuck:
        due |= Q(pk__in=stuck_ids)
    pending_ids = list(
        model.objects.filter(due, status=PENDING)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for pk in pending_ids:
        enqueue_on_commit(task_name, pk, queue=queue)
    if stuck or pending_ids:
        log.info("sweep %s: stuck=%s requeued=%s", model._meta.label_lower, stuck, len(pending_ids))
    return {"pending": len(pending_ids) - stuck, "stuck": stuck}
