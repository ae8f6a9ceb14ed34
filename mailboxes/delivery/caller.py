"""A caller's own audit events, written with the next delivery (issue 10).

A caller that answers for a delivery with an audit event of its own (the API's `api.call`)
hands it to `events_with_next_delivery` around its call to the delivery path. The first
delivery written inside the block links those events into the audit chain with its own (one
chain head, one hash sequence) and inserts them with its rows, in its transaction (on
PostgreSQL, in its one statement: mailboxes/delivery/statement.py). They are written once: a
fan-out's later copies do not repeat them. A delivery refused before anything is written does
not take them: the caller still holds them (`CallerEvents.written` stays False) and records its
event itself, with the status it answers.

The alternative, the caller's own `record()` after `send_message`, costs a chain head of its
own (SELECT … FOR UPDATE, UPDATE) and an INSERT inside the delivery's transaction, while the
boxes' rows are locked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class CallerEvents:
    """The events (keyword arguments of an AuditEvent row) and what became of them."""

    events: list[dict] = field(default_factory=list)
    # Inserted with a delivery's rows, whose transaction ended without error: committed, unless
    # the caller's own transaction wraps it (then they commit or roll back with the caller's).
    written: bool = False


_current: ContextVar[CallerEvents | None] = ContextVar("mailboxes_delivery_caller_events", default=None)


@contextlib.contextmanager
def events_with_next_delivery(events: list[dict]) -> Iterator[CallerEvents]:
    """Inside the block, the first delivery written carries `events` (see the module)."""
    pending = CallerEvents(events=list(events))
    token = _current.set(pending)
    try:
        yield pending
    finally:
        _current.reset(token)


def pending() -> list[dict]:
    """The caller's events the delivery being written must carry: none outside a block, or once
    a delivery of the block wrote them. Each call gives fresh dicts (a retried attempt after a
    rolled-back savepoint builds its rows again)."""
    current = _current.get()
    if current is None or current.written:
        return []
    return [dict(event) for event in current.events]


def mark_written() -> None:
    """Called by the delivery path once its transaction (or savepoint) holding the events ended
    without error."""
    current = _current.get()
    if current is not None:
        current.written = True
