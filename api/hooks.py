"""What the API does after a delivery commits, without the lower layers knowing it: the receiver
of `audit.chain.events_committed` (the signal the audit trail sends after every committed
batch of events) enters patients' replies in the return-box queue and queues the webhooks of
the keys whose box sent or received the message. The sweepers (`api.tasks`) catch up whatever
a crashed process missed.

Both need, for each message, its sending box, that box's kind and whether a key of the box has
a webhook (`sending_boxes`, one query after the commit). An API call already read that of its
key's box with the key (api/auth.py `key_by_prefix`), at the start of the call: inside
`sender_known`, the messages that box submitted in the batch need no query (issue 10, bench/
RESULTS.md: 0.19 ms of a call's CPU and a round trip). A webhook URL set on one of the box's keys
while a call runs is then seen from the next call.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

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
# Whether a key of the box `{box}` (an SQL expression) has a webhook: `sending_boxes` and the
# API key's own query (api/auth.py) ask it alike.
BOX_HAS_WEBHOOK = f"EXISTS (SELECT 1 FROM {API_KEY} k WHERE k.mailbox_id = {{box}} AND k.webhook_url > '')"  # noqa: S608

# Box id → (its kind, whether a key of the box has a webhook), known to the caller (`sender_known`).
_known: ContextVar[dict[int, tuple[str, bool]] | None] = ContextVar("api_hooks_known_senders", default=None)


@contextlib.contextmanager
def sender_known(box: Mailbox, has_webhook: bool | None) -> Iterator[None]:
    """Inside the block, what `sending_boxes` would read of `box` is taken as `box.kind` and
    `has_webhook` (None: not known, the query runs)."""
    if has_webhook is None:
        yield
        return
    token = _known.set({**(_known.get() or {}), box.pk: (box.kind, has_webhook)})
    try:
        yield
    finally:
        _known.reset(token)


def on_events_committed(sender, rows, **kwargs) -> None:
    from_outside = messages_from_outside(rows)
    known = known_senders(rows)
    rows = [r for r in rows if concerns_hooks(r) and r.message_id and r.message_id not in from_outside]
    if not rows:
        return
    ids = {r.message_id for r in rows}
    senders = {pk: known[pk] for pk in ids} if ids <= known.keys() else sending_boxes(ids)
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
        f"SELECT m.id, m.sender_mailbox_id, b.kind, {BOX_HAS_WEBHOOK.format(box='m.sender_mailbox_id')} "  # noqa: S608
        f"FROM {MESSAGE} m JOIN {MAILBOX} b ON b.id = m.sender_mailbox_id WHERE m.id IN ({placeholders})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        return {pk: (box, kind, bool(webhook)) for pk, box, kind, webhook in cursor.fetchall()}


def known_senders(rows) -> dict[int, tuple[int, str, bool]]:
    """`sending_boxes` of the messages of `rows` submitted by a box of `sender_known`."""
    known = _known.get()
    if not known:
        return {}
    return {
        r.message_id: (r.mailbox_id, *known[r.mailbox_id])
        for r in rows
        if r.action == A.SUBMITTED and r.message_id and r.mailbox_id in known
    }


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
        for delivery in row_deliveries(row, by_id, by_box):
            name = event_name(row, delivery)
            if name is None:
                continue
            recipient = delivery.address if delivery else ""
            data = {"message": row.message_id, "recipient": recipient, "status": delivery.status if delivery else ""}
            if delivery is not None and delivery.reason and name == WebhookDelivery.Event.BOUNCED:
                data["code"] = delivery.reason
            webhooks.queue_event(keys, name, message_ref(row.message_id, recipient, row.pk), data)


def queue_refused_copies(box_id: int, sent_id: int, refused: list[dict]) -> None:
    """`message.bounced` for each copy of a call's fan-out refused whole (a patient among
    several: closed space, wrong INS key, no such patient), which no delivery event reports
    (nothing was stored): about the message the call answered with (`sent_id`, where
    `GET /messages/{id}` tells it), with the refused copy's Message-ID, the one its automatic
    return cites in In-Reply-To."""
    keys = webhooks.keys_with_webhook({box_id}) if refused else []
    for item in refused if keys else []:
        data = {
            "message": sent_id,
            "recipient": item["address"],
            "status": Delivery.Status.BOUNCED.value,
            "code": item["code"],
            "message_id": item["message_id"],
        }
        webhooks.queue_event(keys, WebhookDelivery.Event.BOUNCED, message_ref(sent_id, item["address"], 0), data)


def message_ref(message_id: int, recipient: str, row_id: int) -> str:
    """What a message event is about (`WebhookDelivery.subject_ref`: one event per key, event and
    ref): the message and its recipient, or the audit row when no recipient is named. An
    address too long for the column (an address may have 254 characters) is named by its
    SHA-256 instead, as stable."""
    ref = f"{message_id}:{recipient or row_id}"
    if len(ref) <= (WebhookDelivery._meta.get_field("subject_ref").max_length or 80):
        return ref
    return f"{message_id}:#{hashlib.sha256(recipient.encode()).hexdigest()[:40]}"


def row_deliveries(row: AuditEvent, by_id: dict, by_box: dict) -> list[Delivery | None]:
    """The recipients an event concerns: its delivery (`detail["delivery"]`, or the recipient
    box), or those the relay names (`detail["deliveries"]`: one event for every recipient one
    SMTP transaction relayed or bounced), else [None] (the whole message)."""
    detail = row.detail if isinstance(row.detail, dict) else {}
    delivery = by_id.get(detail.get("delivery")) or by_box.get((row.message_id, row.mailbox_id))
    if delivery is not None:
        return [delivery]
    listed = detail.get("deliveries")
    named = [by_id[pk] for pk in listed if pk in by_id] if isinstance(listed, list) else []
    return named or [None]
