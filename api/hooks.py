"""What the API does after a delivery commits, without the lower layers knowing it: the receiver
of `audit.chain.events_committed` (the signal the audit trail sends after every committed
batch of events) enters patients' replies in the return-box queue and queues the webhooks of
the keys whose box sent or received the message. The sweepers (`api.tasks`) catch up whatever
a crashed process missed.
"""

from __future__ import annotations

import logging

from django.db import connection

from api import returns, webhooks
from api.models import ApiKey, ReturnReply, WebhookDelivery
from audit.models import AuditEvent
from mailboxes.delivery import is_read_receipt_event
from mailboxes.models import Delivery, Mailbox, Message

log = logging.getLogger("api.hooks")

A = AuditEvent.Action
API_KEY, MESSAGE, MAILBOX = (f'"{model._meta.db_table}"' for model in (ApiKey, Message, Mailbox))
MESSAGE_EVENTS = {A.DELIVERED, A.RELAYED, A.BOUNCED, A.READ, A.REFUSED}


def on_events_committed(sender, rows, **kwargs) -> None:
    from_outside = messages_from_outside(rows)
    rows = [r for r in rows if concerns_hooks(r) and r.message_id and r.message_id not in from_outside]
    if not rows:
        return
    senders = sending_boxes({r.message_id for r in rows})
    # Only a patient's message can be a reply for the return-box queue (`returns.candidates`).
    replies = {pk for pk, (_box, kind, _webhook) in senders.items() if kind == Mailbox.Kind.PATIENT}
    delivered_boxes = {
        r.mailbox_id for r in rows if r.action == A.DELIVERED and r.mailbox_id and r.message_id in replies
    }
    if delivered_boxes:
        boxes = returns.return_box_ids(delivered_boxes)
        if boxes:
            ids = {r.message_id for r in rows if r.action == A.DELIVERED and r.mailbox_id in boxes}
            if returns.collect(boxes, message_ids=ids):
                queue_reply_events(ids)
    queue_message_events(rows, {pk: box for pk, (box, _kind, webhook) in senders.items() if webhook})


def concerns_hooks(row: AuditEvent) -> bool:
    """Whether either hook can act on `row`: a delivery step, or a read receipt (the one reading
    a webhook reports). An opening of a message is not one, so a page that opens messages costs
    the hooks no query (bench/RESULTS.md, issue 13: the patient's thread page)."""
    return row.action in MESSAGE_EVENTS and (row.action != A.READ or is_read_receipt_event(row))


def sending_boxes(message_ids) -> dict[int, tuple[int, str, bool]]:
    """Message id → (its sending box, that box's kind, whether a key of the box has a webhook),
    for the messages sent from a local box: what both hooks need to know, in one query. It runs
    after every commit of a local box's message, so its SQL is written once here rather than
    compiled by the ORM each time (as `mailboxes.box_actions.boxes_with_settings`)."""
    ids = sorted(message_ids)
    placeholders = ", ".join(["%s"] * len(ids))
    # Table names from the models; every value is a bound parameter.
    sql = (
        f"SELECT m.id, m.sender_mailbox_id, b.kind, EXISTS (SELECT 1 FROM {API_KEY} k "  # noqa: S608
        "WHERE k.mailbox_id = m.sender_mailbox_id AND k.webhook_url > '') "
        f"FROM {MESSAGE} m JOIN {MAILBOX} b ON b.id = m.sender_mailbox_id WHERE m.id IN ({placeholders})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        return {pk: (box, kind, bool(webhook)) for pk, box, kind, webhook in cursor.fetchall()}


def messages_from_outside(rows) -> set[int]:
    """Messages whose submission in this batch names no sending box: mail from another operator
    (or the system). Neither hook concerns them: a patient's reply and a webhook's message both
    have a local sending box. Skipping them saves the ingest two queries per message (issue 17)."""
    return {r.message_id for r in rows if r.action == A.SUBMITTED and r.mailbox_id is None and r.message_id}


def queue_reply_events(message_ids) -> None:
    for reply in ReturnReply.objects.filter(message_id__in=message_ids).select_related("patient"):
        boxes = {reply.mailbox_id, reply.applicative_id} - {None}
        keys = webhooks.keys_with_webhook(boxes)
        if keys:
            webhooks.queue_event(keys, WebhookDelivery.Event.REPLY_RECEIVED, f"reply:{reply.pk}", reply_data(reply))


def reply_data(reply: ReturnReply) -> dict:
    return {
        "reply": reply.pk,
        "box": reply.mailbox_id,
        "message": reply.message_id,
        "in_reply_to_message": reply.original_id,
        "matched_by": reply.matched_by,
        "status": reply.status,
    }


def event_name(row: AuditEvent, delivery: Delivery | None) -> str | None:
    if row.action in (A.DELIVERED, A.RELAYED):
        return WebhookDelivery.Event.DELIVERED
    if is_read_receipt_event(row):
        return WebhookDelivery.Event.READ
    if row.action == A.BOUNCED or (row.action == A.REFUSED and delivery is not None):
        return WebhookDelivery.Event.BOUNCED
    return None


def queue_message_events(rows, senders: dict[int, int]) -> None:
    """`senders`: message id → its sending box, for the messages whose box has a key with a
    webhook (`sending_boxes`)."""
    if not senders:
        return
    keys_by_box: dict[int, list] = {}
    for key in webhooks.keys_with_webhook(set(senders.values())):
        keys_by_box.setdefault(key.mailbox_id, []).append(key)
    deliveries = list(Delivery.objects.filter(message_id__in=list(senders)))
    by_id = {d.pk: d for d in deliveries}
    by_box = {(d.message_id, d.mailbox_id): d for d in deliveries if d.mailbox_id}
    for row in rows:
        keys = keys_by_box.get(senders.get(row.message_id), [])
        if not keys:
            continue
        detail = row.detail if isinstance(row.detail, dict) else {}
        delivery = by_id.get(detail.get("delivery")) or by_box.get((row.message_id, row.mailbox_id))
        name = event_name(row, delivery)
        if name is None:
            continue
        recipient = delivery.address if delivery else ""
        data = {"message": row.message_id, "recipient": recipient, "status": delivery.status if delivery else ""}
        if delivery is not None and delivery.reason and name == WebhookDelivery.Event.BOUNCED:
            data["code"] = delivery.reason
        webhooks.queue_event(keys, name, f"{row.message_id}:{recipient or row.pk}", data)
