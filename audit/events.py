"""The one function that writes an audit event. Callers pass ids, never content."""

from audit.models import AuditEvent


def record(
    action: str,
    *,
    actor=None,
    actor_label: str = "",
    obj=None,
    object_type: str = "",
    object_id="",
    mailbox_id: int | None = None,
    message_id: int | None = None,
    outcome: str = "ok",
    detail: dict | None = None,
    ip: str | None = None,
) -> AuditEvent:
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id or obj.pk
    return AuditEvent.objects.create(
        action=action,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        actor_label=actor_label,
        object_type=object_type,
        object_id=str(object_id or ""),
        mailbox_id=mailbox_id,
        message_id=message_id,
        outcome=outcome,
        detail=detail or {},
        ip=ip,
    )


def audit_rows(events: list[dict]) -> list[AuditEvent]:
    """The unsaved rows of `events` (the delivery path writes them with its other rows)."""
    return [AuditEvent(**e) for e in events]


def record_many(events: list[dict]) -> None:
    """Bulk variant for the delivery path (one INSERT for all recipients)."""
    AuditEvent.objects.bulk_create(audit_rows(events))
