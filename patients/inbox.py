"""What the patient's inbox shows (RULES.md §3), read through access-checked fetches.

- `patient_for_user`: the patient behind an account, else 404;
- `entry_for_patient`: one entry of *their* box, else 404 (another patient's id looks absent);
- `conversations`: the inbox grouped by correspondent (one professional or structure box), with
  the unread count and whether that box closed the exchange;
- `reply_state`: may the patient reply to this message, and if not, the banner to show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.http import Http404

from mailboxes.access import entry_for_user
from mailboxes.filetypes import PREVIEWABLE
from mailboxes.models import Attachment, Entry, Folder, Mailbox, Message
from patients import policy
from patients.display import sender_name
from patients.models import Conversation, Patient


def patient_for_user(user) -> Patient:
    patient = None
    if getattr(user, "is_authenticated", False):
        patient = Patient.objects.select_related("mailbox").filter(user=user).first()
    if patient is None or patient.mailbox_id is None:
        raise Http404("Aucune messagerie patient pour ce compte")
    return patient


def entry_for_patient(user, patient: Patient, entry_id) -> Entry:
    entry = entry_for_user(user, entry_id)
    if entry.mailbox_id != patient.mailbox_id:
        raise Http404("Message introuvable")
    return entry


def correspondent_address(message: Message) -> str:
    return (message.from_address or "").lower()


def reply_target(message: Message) -> str:
    """Where the patient's reply goes: an applicative box's organisational return box
    (RULES.md §2, §6): its setting for a box hosted here, the `Reply-To:` of its domain for one
    of another operator (`policy.outside_reply_address`); else the sender."""
    box = message.sender_mailbox
    if box is None:
        return policy.outside_reply_address(message)
    if box.kind == Mailbox.Kind.APPLICATIVE and box.return_mailbox_id:
        return box.return_mailbox.address
    return correspondent_address(message)


@dataclass
class ConversationRow:
    name: str
    address: str
    latest: Entry
    unread: int = 0
    count: int = 0
    closed: bool = False
    entries: list[Entry] = field(default_factory=list)


def inbox_entries(patient: Patient):
    return (
        Entry.objects.filter(mailbox=patient.mailbox, folder__role=Folder.Role.INBOX, trashed_at__isnull=True)
        .select_related("message__sender_mailbox__return_mailbox")
        .order_by("-received_at", "-id")
    )


def closed_boxes(patient: Patient) -> dict[int, Conversation]:
    return {
        c.mailbox_id: c
        for c in Conversation.objects.filter(patient=patient, state=Conversation.State.CLOSED).select_related("mailbox")
    }


def conversations(patient: Patient) -> list[ConversationRow]:
    closed = closed_boxes(patient)
    rows: dict[str, ConversationRow] = {}
    for entry in inbox_entries(patient):
        message = entry.message
        address = correspondent_address(message)
        row = rows.get(address)
        if row is None:
            row = rows[address] = ConversationRow(name=sender_name(message), address=address, latest=entry)
            if message.sender_mailbox_id:
                row.closed = message.sender_mailbox_id in closed
            else:
                row.closed = policy.external_exchange_state(patient, address) == Conversation.State.CLOSED
        row.count += 1
        row.unread += 0 if entry.seen else 1
        row.entries.append(entry)
    return list(rows.values())


def thread(patient: Patient, entry: Entry) -> list[Entry]:
    """Every message exchanged with the correspondent of `entry`: what they sent (inbox) and
    what the patient sent them (sent folder), oldest first (newest last)."""
    if entry.folder.role == Folder.Role.SENT:
        address = next((r.get("address", "").lower() for r in entry.message.to if r.get("address")), "")
        targets = {address}
    else:
        address = correspondent_address(entry.message)
        targets = {address, reply_target(entry.message)}
    # Which entries belong to the thread, from their addresses alone: the messages themselves
    # (bodies included) are then read for those only, not for the whole box (a long-standing
    # patient's box holds hundreds; bench/RESULTS.md, issue 13: the patient's thread page).
    candidates = Entry.objects.filter(
        mailbox=patient.mailbox, folder__role__in=[Folder.Role.INBOX, Folder.Role.SENT], trashed_at__isnull=True
    ).values_list("pk", "folder__role", "message__from_address", "message__to")
    ids = [
        pk
        for pk, role, sender, to in candidates
        if (role == Folder.Role.INBOX and (sender or "").lower() == address)
        or (role == Folder.Role.SENT and {(r.get("address") or "").lower() for r in to or []} & targets)
    ]
    entries = Entry.objects.filter(pk__in=ids).select_related("folder", "message__sender_mailbox__return_mailbox")
    return sorted(entries, key=lambda e: (e.received_at, e.pk))


@dataclass
class ThreadItem:
    """One message of the thread page, as the patient reads it."""

    entry: Entry
    mine: bool
    closing: bool  # the correspondent's `[FIN]`: shown as the end of the exchange, not a message
    attachments: list[dict]


def thread_items(entries: list[Entry]) -> list[ThreadItem]:
    files: dict[int, list[dict]] = {}
    for a in Attachment.objects.filter(message__in=[e.message_id for e in entries], is_inline=False).order_by(
        "position", "id"
    ):
        files.setdefault(a.message_id, []).append(
            {
                "attachment": a,
                "previewable": a.content_type in PREVIEWABLE,
                "image": a.content_type.startswith("image/"),
            }
        )
    items = []
    for entry in entries:
        mine = entry.folder.role == Folder.Role.SENT
        closing = not mine and policy.is_closing_subject(entry.message.subject)
        items.append(ThreadItem(entry=entry, mine=mine, closing=closing, attachments=files.get(entry.message_id, [])))
    return items


@dataclass
class ReplyState:
    allowed: bool
    closed_by: str = ""  # the name in the closed-conversation banner
    target: str = ""


def reply_state(patient: Patient, entry: Entry) -> ReplyState:
    """RULES.md §3: a patient replies to a box that wrote to them; when that box closed the
    exchange, the banner says so and no message it sent before offers a reply."""
    message = entry.message
    if entry.folder.role != Folder.Role.INBOX or message.is_report:
        return ReplyState(allowed=False)
    if message.from_address.lower() == policy.system_address():
        return ReplyState(allowed=False)
    target = reply_target(message)
    decision = policy.patient_may_write_to(patient, target)
    if decision.deliver:
        return ReplyState(allowed=True, target=target)
    closed_by = sender_name(message) if decision.code == "conversation_closed" else ""
    return ReplyState(allowed=False, closed_by=closed_by, target=target)
