"""Read receipts arriving in a local box (RULES.md §3 MDN; RFC 8098): the original's Delivery to
the Final-Recipient becomes "read"."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from audit.models import AuditEvent
from mailboxes.delivery.events import event
from mailboxes.mime import ParsedMessage, first_msgid
from mailboxes.models import Delivery, Mailbox, Message
from mailboxes.trust import domain_of

# The audit trail records a read receipt as a reading whose actor is the receipt: an opening of a
# message (the webmail, the patient's pages, IMAP: `mailboxes.reading`) is a reading too, by its
# reader. What reports a reading to the sender (the timeline, the API's status and webhooks) is
# the receipt only.
RECEIPT_ACTOR = "mdn"
READ_RECEIPT_EVENTS = Q(action=AuditEvent.Action.READ, actor_label=RECEIPT_ACTOR)


def is_read_receipt_event(row: AuditEvent) -> bool:
    """Whether the audit row `row` is a read receipt's reading (see READ_RECEIPT_EVENTS)."""
    return row.action == AuditEvent.Action.READ and row.actor_label == RECEIPT_ACTOR


def is_read_receipt(parsed: ParsedMessage) -> bool:
    return parsed.is_report and parsed.report_type == "disposition-notification"


def record_read_receipt(parsed: ParsedMessage, delivered: list[Mailbox], mdn: Message) -> list[dict]:
    """An MDN reached a local box: the original's Delivery to the Final-Recipient becomes
    "read". Only for originals sent by, or asking receipts for, a box that got the MDN, and only
    when the receipt comes from the Final-Recipient's own domain: nobody reports a reading on
    behalf of another operator's (or our own) user. Returns the audit events to write."""
    fields = parsed.report_fields
    original_id = first_msgid(fields.get("original-message-id", ""))
    final = fields.get("final-recipient", "").split(";", 1)[-1].strip().strip("<>").lower()
    disposition = fields.get("disposition", "").lower()
    if not original_id or not final or "displayed" not in disposition:
        return []
    if not parsed.from_address or domain_of(final) != domain_of(parsed.from_address):
        return []
    ids = [box.pk for box in delivered]
    addresses = [box.address for box in delivered]
    rows = list(
        Delivery.objects.filter(message__message_id=original_id, address=final)
        .filter(Q(message__sender_mailbox_id__in=ids) | Q(message__mdn_requested_to__in=addresses))
        .exclude(status=Delivery.Status.READ)
        .values_list("id", "message_id", "mailbox_id")
    )
    if not rows:
        return []
    Delivery.objects.filter(pk__in=[r[0] for r in rows]).update(
        status=Delivery.Status.READ, reason=RECEIPT_ACTOR, updated_at=timezone.now()
    )
    return [
        event(
            AuditEvent.Action.READ,
            actor_label=RECEIPT_ACTOR,
            message_id=message_id,
            mailbox_id=mailbox_id,
            detail={"delivery": delivery_id, "mdn": mdn.pk},
        )
        for delivery_id, message_id, mailbox_id in rows
    ]
