"""What each recipient box asked done with new mail (RULES.md §6: filtering of incoming mail,
forwarding, absence messages), applied to every delivered message whatever its path — SMTP
gateway, webmail, API — from one call of the delivery path (`mailboxes.delivery.send_message`).

Inside the delivery transaction:
- the box's sorting rules (`mailboxes.box_rules`) move / flag / mark read the new INBOX entry;
- an absence reply and a forward are decided and written as `IncomingAction` rows, whose ids are
  queued after commit (`mailboxes.tasks.run_incoming_action`); the tasks send through
  `send_message` (`mailboxes.absence`, `mailboxes.forwarding`).

Cost: none inside the transaction when no recipient box has any of these settings (the usual
case: the recipients' query of the plan says so, `may_have_settings`); otherwise one query, a
hand-written UNION over three small tables (`boxes_with_settings`).
"""

from __future__ import annotations

import functools

from django.db import connection, transaction
from django.utils import timezone

from mailboxes.models import AbsenceMessage, BoxRule, Forwarding, IncomingAction, Mailbox, Message


def apply_box_settings(message: Message, delivered: list[Mailbox]) -> None:
    """Called by the delivery path inside its transaction, once `message` is entered in the
    INBOX of each box of `delivered`."""
    # The recipients' query of the plan says which boxes may have settings (`may_have_settings`,
    # mailboxes/delivery/planning.py); a box that got one since (milliseconds ago) is treated as
    # if the message had arrived just before. Boxes from elsewhere are asked here.
    ids = [
        box.pk
        for box in delivered
        if box.kind != Mailbox.Kind.PATIENT and getattr(box, "may_have_settings", None) in (None, True, 1)
    ]
    if not ids:
        return
    wanted = boxes_with_settings(ids, timezone.localdate())
    if not wanted:
        return
    addresses = {box.pk: box.address for box in delivered}
    from mailboxes import box_rules

    box_rules.apply_rules(message, [pk for pk, kinds in wanted.items() if "rules" in kinds])
    actions = []
    for pk, kinds in wanted.items():
        if "absence" in kinds and may_answer(message, addresses[pk]):
            actions.append(IncomingAction(mailbox_id=pk, message=message, kind=IncomingAction.Kind.ABSENCE))
        if "forward" in kinds and may_forward(message, pk, addresses[pk]):
            actions.append(IncomingAction(mailbox_id=pk, message=message, kind=IncomingAction.Kind.FORWARD))
    # The rows' ids come back from the INSERT (RETURNING on PostgreSQL and SQLite).
    for action in IncomingAction.objects.bulk_create(actions):
        transaction.on_commit(functools.partial(enqueue, action.pk))


def boxes_with_settings(box_ids: list[int], today) -> dict[int, set[str]]:
    """Box id → which of "rules", "absence" (on today), "forward" it has, for the boxes of
    `box_ids` that have any: one query. It runs for every delivered message, so its SQL is
    written once here rather than compiled by the ORM each time (measured: 1.8 ms compiled with
    three EXISTS annotations, a fraction of that as text; bench/RESULTS.md)."""
    rules, absence, forwarding = (m._meta.db_table for m in (BoxRule, AbsenceMessage, Forwarding))
    ids = ", ".join(["%s"] * len(box_ids))
    # Table names from the models; every value is a bound parameter.
    sql = (
        f'SELECT DISTINCT mailbox_id, 1 FROM "{rules}" WHERE enabled AND mailbox_id IN ({ids}) '  # noqa: S608
        f'UNION ALL SELECT mailbox_id, 2 FROM "{absence}" WHERE enabled AND mailbox_id IN ({ids}) '
        "AND (starts_on IS NULL OR starts_on <= %s) AND (ends_on IS NULL OR ends_on >= %s) "
        f'UNION ALL SELECT mailbox_id, 3 FROM "{forwarding}" WHERE enabled AND mailbox_id IN ({ids})'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*box_ids, *box_ids, today, today, *box_ids])
        rows = cursor.fetchall()
    found: dict[int, set[str]] = {}
    for box_id, kind in rows:
        found.setdefault(box_id, set()).add({1: "rules", 2: "absence", 3: "forward"}[kind])
    return found


def may_answer(message: Message, box_address: str) -> bool:
    """What the message row alone tells about an absence reply (the task checks the rest, from
    the headers): never to a report, an automatic message, the null sender, or oneself."""
    sender = (message.envelope_from or "").lower()
    return bool(sender) and not message.is_report and not message.auto_submitted and sender != box_address


def may_forward(message: Message, box_id: int, box_address: str) -> bool:
    """Never a report (it is about a message this box sent), nor what the box sent itself."""
    if message.is_report or message.sender_mailbox_id == box_id:
        return False
    return box_address not in ((message.envelope_from or "").lower(), (message.from_address or "").lower())


def enqueue(action_id: int) -> bool:
    from django.conf import settings

    from mailboxes import queueing

    # Mail going out: the workers of the relay's queue (RELAY_QUEUE) carry it too. A broker that
    # is down is logged, not raised: `sweep_actions` queues the row later.
    return queueing.enqueue("mailboxes.tasks.run_incoming_action", action_id, queue=settings.RELAY_QUEUE)


# --- The task's side ---------------------------------------------------------------------------

SWEEP_GRACE_SECONDS = 60
SWEEP_BATCH = 500


def run_action(action_id: int) -> str | None:
    """Claim one pending action by a conditional UPDATE (a duplicate task finds nothing to
    claim), do it, and record its outcome. Returns the outcome code, None when not claimed."""
    from django.db.models import F

    from mailboxes import absence, forwarding

    claimed = IncomingAction.objects.filter(pk=action_id, status=IncomingAction.Status.PENDING).update(
        status=IncomingAction.Status.RUNNING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return None
    action = IncomingAction.objects.select_related("mailbox", "message").get(pk=action_id)
    try:
        if action.kind == IncomingAction.Kind.ABSENCE:
            outcome = absence.send_absence_reply(action)
        else:
            outcome = forwarding.forward_message(action)
    except Exception:
        # Put it back in line for the sweeper (storage or database hiccup), then let Celery log it.
        IncomingAction.objects.filter(pk=action_id).update(status=IncomingAction.Status.PENDING)
        raise
    status = IncomingAction.Status.DONE if outcome == "sent" else IncomingAction.Status.SKIPPED
    if outcome.startswith("refused:"):
        status = IncomingAction.Status.FAILED
    IncomingAction.objects.filter(pk=action_id).update(status=status, outcome=outcome[:60], updated_at=timezone.now())
    return outcome


def sweep_actions() -> int:
    """Periodic: re-queue pending actions whose task was lost, and running ones whose worker
    died (after RELAY_SENDING_TIMEOUT_SECONDS, the relay's: an action sends mail too)."""
    import datetime

    from django.conf import settings

    now = timezone.now()
    stuck_before = now - datetime.timedelta(seconds=settings.RELAY_SENDING_TIMEOUT_SECONDS)
    IncomingAction.objects.filter(status=IncomingAction.Status.RUNNING, updated_at__lt=stuck_before).update(
        status=IncomingAction.Status.PENDING, updated_at=now - datetime.timedelta(seconds=SWEEP_GRACE_SECONDS)
    )
    due = list(
        IncomingAction.objects.filter(
            status=IncomingAction.Status.PENDING,
            updated_at__lte=now - datetime.timedelta(seconds=SWEEP_GRACE_SECONDS),
            attempts__lt=5,
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for action_id in due:
        transaction.on_commit(functools.partial(enqueue, action_id))
    return len(due)
