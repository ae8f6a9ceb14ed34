"""Quota accounting (RULES.md §2: each box has a quota; the encoded size of each message counts
once per box that holds it): counting a delivery without a lost update, handing space back
when entries are deleted for good."""

from __future__ import annotations

from django.db import connection
from django.db.models import Case, DateTimeField, F, Q, Value, When
from django.db.models.functions import Greatest

from mailboxes.delivery.decisions import refuse_over_quota
from mailboxes.models import Mailbox, Message
from mailboxes.patient_domain import Decision


def count_space(box_ids: set[int], size: int, *, sender_box_id: int | None, sender_in_sent: bool, now) -> bool:
    """Add `size` to each box of `box_ids` (recipients, and the sender's box when the message
    goes to its SENT) in one conditional UPDATE that also checks the room (the rows locked in id
    order just before when there are several): False when a
    recipient box filled up since the plan (the caller rolls back and plans again). Only
    sending is a use of a box (AU-037), so the sender's `last_used_at` moves in the same UPDATE."""
    if not box_ids:
        return True
    lock_in_id_order(box_ids)
    room = Q(used_bytes__lte=F("quota_bytes") - size)
    changes: dict = {"used_bytes": F("used_bytes") + size}
    if sender_box_id is not None:
        if sender_in_sent:
            room |= Q(pk=sender_box_id)  # the sender's own copy is never refused for space
        changes["last_used_at"] = Case(
            When(pk=sender_box_id, then=Value(now, output_field=DateTimeField())), default=F("last_used_at")
        )
    return Mailbox.objects.filter(room, pk__in=box_ids).update(**changes) == len(box_ids)


# `lock_in_id_order` on PostgreSQL, written once: it runs in every delivery from a local box to
# another (the sender's SENT copy is counted too), where the ORM's compile of the same SELECT …
# FOR UPDATE was about 0.5 ms of CPU (bench/RESULTS.md issue 10, branch i10x).
LOCK_SQL = f'SELECT id FROM "{Mailbox._meta.db_table}" WHERE id = ANY(%s) ORDER BY id FOR UPDATE'  # noqa: S608


def lock_in_id_order(box_ids: set[int]) -> None:
    """Several boxes: lock their rows in id order before counting. An UPDATE takes them in the
    order it finds them, and two deliveries sharing two boxes (a box writing to a patient while
    the patient writes back, one box sending twice to one patient) could take them in opposite
    orders and deadlock."""
    if len(box_ids) <= 1:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(LOCK_SQL, [sorted(box_ids)])
        return
    list(Mailbox.objects.select_for_update().filter(pk__in=box_ids).order_by("pk").values_list("pk", flat=True))


# `count_space` as one part of the delivery's single statement (mailboxes/delivery/statement.py):
# the same conditional UPDATE, written once; its RETURNING rows are counted by the statement.
COUNT_SPACE_SQL = (
    f'UPDATE "{Mailbox._meta.db_table}" SET used_bytes = used_bytes + %s, '  # noqa: S608 - table name from the model
    "last_used_at = CASE WHEN id = %s THEN %s ELSE last_used_at END "
    "WHERE id = ANY(%s) AND (used_bytes <= quota_bytes - %s OR id = %s) RETURNING id"
)


def count_space_sql(
    box_ids: set[int], size: int, *, sender_box_id: int | None, sender_in_sent: bool, now
) -> tuple[str, list]:
    """`count_space` for the delivery's one statement: (sql, params) of the UPDATE, whose
    returned rows must number `len(box_ids)`. Call `lock_in_id_order` first."""
    # The sender's own copy is never refused for space; only sending moves `last_used_at`.
    roomless = sender_box_id if sender_in_sent else None
    return COUNT_SPACE_SQL, [size, sender_box_id, now, sorted(box_ids), size, roomless]


def refuse_boxes_now_full(local: dict[str, Mailbox], refused: dict[str, Decision], size: int) -> None:
    """Inside the transaction: lock the recipient boxes (in id order, so two deliveries never
    deadlock) and move those that no longer have room from `local` to `refused`."""
    ids = sorted({box.pk for box in local.values()})
    room = {
        pk: quota - used
        for pk, used, quota in Mailbox.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "used_bytes", "quota_bytes")
    }
    for address, box in list(local.items()):
        if room.get(box.pk, 0) < size:
            del local[address]
            refused[address] = refuse_over_quota()


def count_draft(box_id: int, size: int, replaced_size: int = 0) -> None:
    """A draft is a message its box holds: it counts like any other. Saving one is never
    refused for space (the text being written is not lost); a replaced draft hands its old
    size back in the same UPDATE."""
    delta = size - replaced_size
    if delta:
        Mailbox.objects.filter(pk=box_id).update(used_bytes=Greatest(F("used_bytes") + delta, 0))


def release_space(entries) -> dict[int, int]:
    """Quota accounting when entries are deleted for good (emptied trash, purge, a deleted
    draft, a box's inactivity deletion): each box gets back the encoded size of its deleted
    messages, in one conditional UPDATE per box that never goes below zero. Call it in the
    transaction that deletes the entries, before the messages themselves may go. Returns box
    id → bytes released."""
    entries = list(entries)
    sizes = dict(Message.objects.filter(pk__in={e.message_id for e in entries}).values_list("pk", "size"))
    freed: dict[int, int] = {}
    for entry in entries:
        freed[entry.mailbox_id] = freed.get(entry.mailbox_id, 0) + sizes.get(entry.message_id, 0)
    for box_id, amount in freed.items():
        if amount:
            Mailbox.objects.filter(pk=box_id).update(used_bytes=Greatest(F("used_bytes") - amount, 0))
    return freed
