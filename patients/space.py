"""The patient's settings in their space (RULES.md §3): the personal e-mail for notifications,
blocking and unblocking professionals, and closing the space. Each change is audited (ids only).
"""

from django.db import transaction
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent
from mailboxes.models import Entry, Folder, Mailbox
from mailboxes.patient_domain import is_patient_address
from patients.display import box_name, sender_name
from patients.models import Block, Conversation, Patient
from patients.policy import system_address


def blockable_mailboxes(patient: Patient):
    """The boxes a patient may block: those that wrote to them (a conversation exists)."""
    return Mailbox.objects.filter(patient_conversations__patient=patient).exclude(kind=Mailbox.Kind.PATIENT).distinct()


def set_notification_email(patient: Patient, email: str, actor) -> None:
    patient.notification_email = email
    patient.save(update_fields=["notification_email"])
    record(AuditEvent.Action.PROFILE_UPDATED, actor=actor, obj=patient, detail={"field": "notification_email"})


def is_blocked(patient: Patient, entry: Entry) -> bool:
    """Whether the patient blocked the sender of `entry` (its box here, or its address)."""
    sender_box = entry.message.sender_mailbox_id
    if sender_box is not None:
        return Block.objects.filter(patient=patient, mailbox_id=sender_box).exists()
    address = correspondent_address(entry)
    return bool(address) and Block.objects.filter(patient=patient, address=address).exists()


@transaction.atomic
def block_mailbox(patient: Patient, mailbox: Mailbox, actor) -> Block:
    """From now on, messages from `mailbox` to this patient are refused ("non distribué")."""
    block, created = Block.objects.get_or_create(patient=patient, mailbox=mailbox)
    if created:
        record(AuditEvent.Action.BLOCKED, actor=actor, obj=block, mailbox_id=mailbox.pk)
    return block


def _outside_sender(entry: Entry) -> str:
    """The envelope sender of a received message from another operator (what the policy checks
    a block against), "" for a box hosted here, a patient, the system address or a report; no
    query: whether the address is hosted here is the caller's look-up."""
    message = entry.message
    if entry.folder.role != Folder.Role.INBOX or message.sender_mailbox_id is not None or message.is_report:
        return ""
    address = (message.envelope_from or message.from_address or "").lower()
    if not address or address == system_address() or is_patient_address(address):
        return ""
    return address


def correspondent_address(entry: Entry) -> str:
    """The address that identifies the sender of `entry`, a professional of another operator;
    "" otherwise (a box hosted here is blocked by its box)."""
    address = _outside_sender(entry)
    if address and Mailbox.objects.filter(address=address).exists():
        return ""
    return address


def outside_correspondents(patient: Patient) -> dict[str, Entry]:
    """Professionals of other operators who wrote to the patient: their address → the latest
    entry they sent (what names them, as the patient reads them). The messages are read without
    their bodies, and the boxes hosted here found in one query."""
    entries = (
        Entry.objects.filter(
            mailbox=patient.mailbox_id, folder__role=Folder.Role.INBOX, message__sender_mailbox__isnull=True
        )
        .select_related("message", "folder")
        .only(
            "id",
            "folder__role",
            "message__sender_mailbox",
            "message__is_report",
            "message__envelope_from",
            "message__from_address",
            "message__from_name",
        )
        .order_by("-id")
    )
    found: dict[str, Entry] = {}
    for entry in entries:
        address = _outside_sender(entry)
        if address and address not in found:
            found[address] = entry
    hosted = set(Mailbox.objects.filter(address__in=list(found)).values_list("address", flat=True))
    return {address: entry for address, entry in found.items() if address not in hosted}


def block_name(block: Block, correspondents: dict[str, Entry] | None = None) -> str:
    """The blocked box as the patient reads it."""
    if block.mailbox is not None:
        return box_name(block.mailbox)
    entry = (correspondents if correspondents is not None else outside_correspondents(block.patient)).get(block.address)
    return sender_name(entry.message) if entry is not None else block.address.split("@", 1)[0]


@transaction.atomic
def block_correspondent(patient: Patient, entry: Entry, actor) -> Block:
    """From now on, messages from the sender of `entry`, a professional of another operator, to
    this patient are refused ("non distribué"), as for a box hosted here."""
    address = correspondent_address(entry)
    if not address:
        raise ValueError("not a correspondent of another operator")
    block, created = Block.objects.get_or_create(patient=patient, address=address)
    if created:
        record(AuditEvent.Action.BLOCKED, actor=actor, obj=block)
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
