"""The audit events of a delivery (RULES.md §5): ids and counts, never content."""

from __future__ import annotations

from audit.models import AuditEvent


def event(action, *, actor=None, actor_label="", message_id=None, mailbox_id=None, outcome="ok", detail=None) -> dict:
    """One audit event about a message, as the keyword arguments of an AuditEvent row."""
    return {
        "action": action,
        "actor": actor if getattr(actor, "is_authenticated", False) else None,
        "actor_label": actor_label,
        "object_type": "message",
        "object_id": str(message_id or ""),
        "mailbox_id": mailbox_id,
        "message_id": message_id,
        "outcome": outcome,
        "detail": detail or {},
    }


def refusal_event(code: str, *, actor, source: str, sender_box_id: int | None, recipients: int) -> dict:
    """A whole message refused: nothing was stored, so the event names no message."""
    return event(
        AuditEvent.Action.REFUSED,
        actor=actor,
        actor_label=source,
        mailbox_id=sender_box_id,
        outcome=code,
        detail={"source": source, "recipients": recipients},
    )
