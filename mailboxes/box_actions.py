"""What each recipient box asked done with new mail (RULES.md §6: filtering of incoming mail,
forwarding, absence messages), applied to every delivered message whatever its path — SMTP
gateway, webmail, API — from one call of the delivery path (`mailboxes.delivery.send_message`).

Inside the delivery transaction:
- the box's sorting rules (`mailboxes.box_rules`) move / flag / mark read the new INBOX entry;
- an absence reply and a forward are decided and written as `IncomingAction` rows, whose ids are
  queued after commit (`mailboxes.tasks.run_incoming_action`); the tasks send through
  `send_message` (`mailboxes.absence`, `mailboxes.forwarding`).

Cost: one query per delivered message when no recipient box has any of these settings (the
usual case), through EXISTS sub-queries on small tables.
"""

from __future__ import annotations

import functools

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from mailboxes.models import AbsenceMessage, BoxRule, Forwarding, IncomingAction, Mailbox, Message


def active_absences(today):
    """Absence messages switched on and covering `today` (either date may be open)."""
    return AbsenceMessage.objects.filter(enabled=True).filter(
        Q(starts_on__isnull=True) | Q(starts_on__lte=today), Q(ends_on__isnull=True) | Q(ends_on__gte=today)
    )


def apply_box_settings(message: Message, delivered: list[Mailbox]) -> None:
    """Called by the delivery path inside its transaction, once `message` is entered in the
    INBOX of each box of `delivered`."""
    ids = [box.pk for box in delivered if box.kind != Mailbox.Kind.PATIENT]
    if not ids:
        return
    today = timezone.localdate()
    wanted = list(
        Mailbox.objects.filter(pk__in=ids)
        .annotate(
            has_rules=Exists(BoxRule.objects.filter(mailbox=OuterRef("pk"), enabled=True)),
            is_absent=Exists(active_absences(today).filter(mailbox=OuterRef("pk"))),
            forwards=Exists(Forwarding.objects.filter(mailbox=OuterRef("pk"), enabled=True)),
        )
        .filter(Q(has_rules=True) | Q(is_absent=True) | Q(forwards=True))
        .values_list("pk", "address", "has_rules", "is_absent", "forwards")
    )
    if not wanted:
        return
    from mailboxes import box_rules

    box_rules.apply_rules(message, [pk for pk, _a, has_rules, _b, _f in wanted if has_rules])
    actions = []
    for pk, address, _rules, is_absent, forwards in wanted:
        if is_absent and may_answer(message, address):
            actions.append(IncomingAction(mailbox_id=pk, message=message, kind=IncomingAction.Kind.ABSENCE))
        if forwards and may_forward(message, pk, address):
            actions.append(IncomingAction(mailbox_id=pk, message=message, kind=IncomingAction.Kind.FORWARD))
    # The rows' ids come back from the INSERT (RETURNING on PostgreSQL and SQLite).
    for action in IncomingAction.objects.bulk_create(actions):
        transaction.on_commit(functools.partial(enqueue, action.pk))


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


def enqueue(action_id: int) -> None:
    from mailboxes import tasks

    tasks.run_incoming_action.delay(action_id)


# --- The task's side ---------------------------------------------------------------------------

RUNNING_TIMEOUT_SECONDS = 15 * 60
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
    died (after RUNNING_TIMEOUT_SECONDS)."""
    import datetime

    now = timezone.now()
    stuck_before = now - datetime.timedelta(seconds=RUNNING_TIMEOUT_SECONDS)
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
