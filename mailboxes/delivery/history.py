"""A sent message's history (issue 6 §6, issue 10): its Delivery rows, one per recipient, and the
audit events the delivery path recorded for it, each tied to the recipient it concerns. The
webmail's timeline (webmail/timeline.py) and the API's status (`GET /api/v1/messages/{id}`) both
read it, so that they always tell the same story.

The delivery path records ids only: an event names its recipient through the Delivery row
(`detail["delivery"]`), or, for a delivery or a read receipt, through the recipient box
(`mailbox_id`); any other event's box is the sender's. A reading reported to the sender is a
read receipt's only (`receipts.READ_RECEIPT_EVENTS`), never someone opening the message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q

from audit.models import AuditEvent
from mailboxes.delivery.decisions import refusal_text
from mailboxes.delivery.receipts import READ_RECEIPT_EVENTS
from mailboxes.models import Delivery

HISTORY_LIMIT = 500  # events read per message: a message to many recipients, retried by the relay
BOX_EVENTS = (AuditEvent.Action.DELIVERED, AuditEvent.Action.READ)
REFUSED_STATES = (Delivery.Status.BOUNCED, Delivery.Status.RETURNED)


def refusal_reason(delivery: Delivery | None) -> str:
    """Why a recipient did not get the message, in French for the sender: the refusal text of a
    bounced or returned delivery's code, "" otherwise."""
    if delivery is None or delivery.status not in REFUSED_STATES:
        return ""
    return refusal_text(delivery.reason, delivery.address)


@dataclass(frozen=True)
class HistoryEvent:
    event: AuditEvent
    detail: dict
    delivery: Delivery | None  # None: an event of the whole message (submitted…)


@dataclass
class History:
    deliveries: list[Delivery]  # by address
    events: list[HistoryEvent]  # in time order


def message_history(message, actions: Iterable[str]) -> History:
    """The deliveries of `message` and its audit events of `actions`, read receipts included."""
    deliveries = list(Delivery.objects.filter(message=message).order_by("address"))
    by_id: dict[object, Delivery] = {d.pk: d for d in deliveries}
    by_box: dict[object, Delivery] = {d.mailbox_id: d for d in deliveries if d.mailbox_id}
    wanted = [a for a in actions if a != AuditEvent.Action.READ]
    rows = (
        AuditEvent.objects.filter(message_id=message.pk)
        .filter(Q(action__in=wanted) | READ_RECEIPT_EVENTS)
        .order_by("at", "id")[:HISTORY_LIMIT]
    )
    events = []
    for row in rows:
        detail = row.detail if isinstance(row.detail, dict) else {}
        delivery = by_id.get(detail.get("delivery"))
        if delivery is None and row.action in BOX_EVENTS:
            delivery = by_box.get(row.mailbox_id)
        events.append(HistoryEvent(row, detail, delivery))
    return History(deliveries, events)
