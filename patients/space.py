"""The patient's settings in their space (RULES.md §3): the personal e-mail for notifications,
blocking and unblocking professionals, and closing the space. Each change is audited (ids only).
"""

from django.db import transaction
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent
from mailboxes.models import Mailbox
from patients.models import Block, Conversation, Patient


def blockable_mailboxes(patient: Patient):
    """The boxes a patient may block: those that wrote to them (a conversation exists)."""
    return Mailbox.objects.filter(patient_conversations__patient=patient).exclude(kind=Mailbox.Kind.PATIENT).distinct()


def set_notification_email(patient: Patient, email: str, actor) -> None:
    patient.notification_email = email
    patient.save(update_fields=["notification_email"])
    record(AuditEvent.Action.PROFILE_UPDATED, actor=actor, obj=patient, detail={"field": "notification_email"})


@transaction.atomic
def block_mailbox(patient: Patient, mailbox: Mailbox, actor) -> Block:
    """From now on, messages from `mailbox` to this patient are refused ("non distribué")."""
    block, created = Block.objects.get_or_create(patient=patient, mailbox=mailbox)
    if created:
        record(AuditEvent.Action.BLOCKED, actor=actor, obj=block, mailbox_id=mailbox.pk)
    return block


@transaction.atomic
def unblock_mailbox(patient: Patient, block: Block, actor) -> None:
    mailbox_id = block.mailbox_id
    block_id = block.pk
    block.delete()
    record(AuditEvent.Action.UNBLOCKED, actor=actor, object_type="block", object_id=block_id, mailbox_id=mailbox_id)


@transaction.atomic
def close_space(patient: Patient, actor=None) -> bool:
    """The patient's space is closed (by the patient, or by an administrator at their request):
    from now on every message to them gets the "closed space" automatic return, and they can no
    longer send. Returns False, and records nothing, when it was already closed."""
    now = timezone.now()
    changed = (
        Patient.objects.filter(pk=patient.pk)
        .exclude(space_state=Patient.SpaceState.CLOSED)
        .update(space_state=Patient.SpaceState.CLOSED, space_closed_at=now)
    )
    patient.refresh_from_db(fields=["space_state", "space_closed_at"])
    if changed:
        record(
            AuditEvent.Action.SPACE_CLOSED,
            actor=actor,
            actor_label="" if actor else "system",
            obj=patient,
            mailbox_id=patient.mailbox_id,
        )
    return bool(changed)


def is_closed_by(patient: Patient, mailbox: Mailbox | None) -> Conversation | None:
    if mailbox is None:
        return None
    return Conversation.objects.filter(patient=patient, mailbox=mailbox, state=Conversation.State.CLOSED).first()
