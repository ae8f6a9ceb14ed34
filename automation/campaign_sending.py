"""Sending a campaign, in batches, resumably, once per patient (issue 9 item 4).

A batch task (`automation.tasks.send_campaign_batch`, a few in parallel) sends chunks of lines;
each chunk is ONE transaction that

1. locks up to `AUTOMATION_CAMPAIGN_CHUNK` pending lines (`FOR UPDATE SKIP LOCKED`: parallel
   batches take different lines) and claims them by a conditional UPDATE (pending → claimed);
2. sends each line's message through `mailboxes.fanout` → `mailboxes.delivery.send_message`
   (no savepoint per line or message: a refusal is simply that line's outcome);
3. writes each line's outcome (sent with its message, returned, failed), the convocations and
   reminders of an appointment model, one audit event per line, and the campaign's progress.

The message and the line's "sent" commit together, so a worker killed mid-chunk leaves its lines
pending and nothing of their messages: the next batch sends them, once. A line that fails in an
unexpected way (a bug, a database error) rolls the chunk back whole; the chunk is then sent
again line by line, each line in a savepoint of its own, so that line fails alone (a savepoint
per line and per message on every chunk cost four statements and two PostgreSQL subtransactions
a message, bench/RESULTS.md issue 9). A line is never
committed as "claimed". The sweeper (`sweep`, Celery beat) finishes campaigns with nothing left,
and re-queues the batches of a campaign whose pending lines saw no progress for
`AUTOMATION_CAMPAIGN_STALL_SECONDS` (task lost with the broker, worker killed); without a broker
(the embedded set-up) it is the sweeper, run by `runscheduler`, that sends, a batch at a time.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time

from celery import current_app, signature
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.events import record_many
from audit.models import AuditEvent
from automation import calendar, campaigns, convocations, sending
from automation.models import Campaign, CampaignLine, Convocation, Reminder
from mailboxes import trust
from mailboxes.delivery import DeliveryRefused, many_in_one_transaction

log = logging.getLogger(__name__)


def enqueue(campaign_id: int, count: int | None = None) -> None:
    """Queue the campaign's batch tasks (after commit). Without a broker nothing is queued: the
    embedded scheduler's sweeper sends. A broker that is down is logged; the sweeper re-queues."""
    if current_app.conf.task_always_eager:
        return
    for _ in range(count or settings.AUTOMATION_CAMPAIGN_PARALLEL):
        try:
            # Queued by name (the app's ready() registers the tasks): services never import tasks.
            signature("automation.tasks.send_campaign_batch", args=(campaign_id,)).apply_async(
                queue=settings.AUTOMATION_QUEUE or None
            )
        except Exception:
            log.exception("campaign batch not queued: campaign=%s", campaign_id)
            return


def process_batch(campaign_id: int, max_lines: int | None = None, budget_seconds: float | None = None) -> bool:
    """Send up to `max_lines` lines (or for `budget_seconds`); True when lines remain to send
    and the campaign is still sending."""
    max_lines = max_lines or settings.AUTOMATION_CAMPAIGN_BATCH
    started = time.monotonic()
    cache = sending.AttachmentCache()
    done = 0
    while done < max_lines:
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            break
        # The trust space's names read now, outside the chunk's transaction, so that its 50
        # deliveries take them from the process's cache (mailboxes.trust).
        trust.cached_domain_sets()
        count = _process_chunk(campaign_id, cache)
        if count is None:  # paused, cancelled, finished, or over the daily limit
            return False
        if count == 0:
            break
        done += count
    finish_if_done(campaign_id)
    return CampaignLine.objects.filter(campaign_id=campaign_id, status=CampaignLine.Status.PENDING).exists() and (
        Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).exists()
    )


def _process_chunk(campaign_id: int, cache) -> int | None:
    try:
        return _send_chunk(campaign_id, cache, careful=False)
    except Exception:
        log.exception("campaign chunk rolled back, sent again line by line: campaign=%s", campaign_id)
    return _send_chunk(campaign_id, cache, careful=True)


def _send_chunk(campaign_id: int, cache, *, careful: bool) -> int | None:
    """One chunk in one transaction. `careful`: each line in its own savepoint, a line's
    unexpected failure recorded as that line's; otherwise it propagates and rolls back the chunk."""
    with transaction.atomic():
        campaign = (
            Campaign.objects.select_related("model", "version", "mailbox__structure").filter(pk=campaign_id).first()
        )
        if campaign is None or campaign.status != Campaign.Status.SENDING:
            return None
        ids = list(
            CampaignLine.objects.select_for_update(skip_locked=True)
            .filter(campaign_id=campaign_id, status=CampaignLine.Status.PENDING)
            .order_by("number")
            .values_list("pk", flat=True)[: settings.AUTOMATION_CAMPAIGN_CHUNK]
        )
        if not ids:
            return 0
        remaining = sending.remaining_today(campaign.mailbox)
        if remaining <= 0:
            campaigns.pause(campaign, None, reason="daily_limit")
            log.info("campaign paused at the daily limit: campaign=%s", campaign_id)
            return None
        ids = ids[:remaining]
        CampaignLine.objects.filter(pk__in=ids, status=CampaignLine.Status.PENDING).update(
            status=CampaignLine.Status.CLAIMED
        )
        lines = list(
            CampaignLine.objects.filter(pk__in=ids, status=CampaignLine.Status.CLAIMED)
            .select_related("patient__mailbox")
            .order_by("number")
        )
        # The chunk's files synced and the box's SENT copies counted once, before this COMMIT.
        with many_in_one_transaction(campaign.mailbox, savepoint_per_message=careful):
            _send_lines(campaign, lines, cache, careful)
        Campaign.objects.filter(pk=campaign_id).update(last_progress_at=timezone.now())
        return len(lines)


def _send_lines(campaign: Campaign, lines: list[CampaignLine], cache, careful: bool) -> None:
    now = timezone.now()
    new_convocations: list[tuple[CampaignLine, Convocation]] = []
    events = []
    for line in lines:
        convocation = _convocation_for(campaign, line) if campaign.model.is_appointment else None
        status, reason, message = _send_line(campaign, line, convocation, cache, careful)
        line.status, line.reason = status, reason[:60]
        if message is not None:
            line.message, line.sent_at = message, now
            events.append(_line_event(campaign, line, message))
            if convocation is not None:
                convocation.message = message
                new_convocations.append((line, convocation))
    if new_convocations:
        created = Convocation.objects.bulk_create([c for _line, c in new_convocations])
        reminders = []
        for (line, _unsaved), convocation in zip(new_convocations, created, strict=True):
            line.convocation = convocation
            reminders += convocations.new_reminders(convocation, now)
        Reminder.objects.bulk_create(reminders)
    _write_outcomes(lines)
    record_many(events)


LINE_COLUMNS = ["status", "reason", "message", "sent_at", "convocation"]


def _write_outcomes(lines: list[CampaignLine]) -> None:
    """Each line's outcome, in the chunk's transaction. On PostgreSQL in ONE statement (the
    columns as arrays, `UPDATE … FROM unnest(…)`); elsewhere one short UPDATE per line
    (`bulk_update`'s CASE over five columns cost more CPU than the line's own message)."""
    if connection.vendor != "postgresql":
        for line in lines:
            CampaignLine.objects.filter(pk=line.pk).update(**{c: getattr(line, c) for c in LINE_COLUMNS})
        return
    fields = [CampaignLine._meta.get_field(c) for c in [*LINE_COLUMNS, "id"]]
    arrays = [[f.get_db_prep_save(getattr(line, f.attname), connection) for line in lines] for f in fields]
    types = [f.db_type(connection).split("(")[0] for f in fields]  # varchar(10) → varchar
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields[:-1])
    unnest = ", ".join(f"%s::{t}[]" for t in types)
    names = ", ".join(quote(f.column) for f in fields)
    table = quote(CampaignLine._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS l SET {assignments} FROM unnest({unnest}) AS v({names}) WHERE l.id = v.id",  # noqa: S608 - model names
            arrays,
        )


def _convocation_for(campaign: Campaign, line: CampaignLine) -> Convocation:
    model = campaign.model
    values = {k: v for k, v in (line.values or {}).items() if not k.startswith("_") and k != "ins"}
    return Convocation(
        model=model,
        version=campaign.version,
        mailbox=campaign.mailbox,
        patient=line.patient,
        starts_at=campaigns.starts_at_of(line),
        values=values,
        created_by_id=campaign.created_by_id,
        **convocations.appointment_details(model, values),
    )


def _send_line(campaign, line, convocation, cache, careful: bool) -> tuple[str, str, object]:
    """(status, reason, message) of one line. A refusal is the line's outcome; any other
    failure too when `careful` (the line in its savepoint), else it propagates."""
    S = CampaignLine.Status
    version = campaign.version
    if convocation is not None:
        convocation.version = version
        convocation.model = campaign.model
        composed = sending.compose(version, line.patient, convocation.values, convocation.starts_at)
        attachments = [*cache.get(version), calendar.attachment(convocation, "REQUEST", description=composed.subject)]
    else:
        composed = sending.compose(version, line.patient, line.values, campaigns.starts_at_of(line))
        attachments = cache.get(version)
    if composed.missing:
        return S.FAILED, "missing_field", None
    # A refusal writes nothing of the message (its automatic return, if any, stays: the sending
    # box gets it, as for any message), so only the careful pass needs a savepoint per line.
    try:
        with transaction.atomic() if careful else contextlib.nullcontext():
            outcome = sending.deliver(
                campaign.mailbox, campaign.created_by, line.patient, composed, attachments, source="webmail"
            )
    except DeliveryRefused as refusal:
        returned = any(d.automatic_return for d in refusal.refused.values())
        return (S.RETURNED if returned else S.FAILED), refusal.code, None
    except Exception:
        if not careful:
            raise
        log.exception("campaign line failed: campaign=%s line=%s", campaign.pk, line.pk)
        return S.FAILED, "error", None
    return S.SENT, "", outcome.primary.message


def _line_event(campaign, line, message) -> dict:
    return {
        "action": AuditEvent.Action.CAMPAIGN_LINE_SENT,
        "actor": None,
        "actor_label": "automation",
        "object_type": "campaignline",
        "object_id": str(line.pk),
        "mailbox_id": campaign.mailbox_id,
        "message_id": message.pk,
        "outcome": "ok",
        "detail": {"campaign": campaign.pk, "line": line.number, "patient": line.patient_id},
    }


def finish_if_done(campaign_id: int) -> bool:
    """A sending campaign with no pending line is done (conditional: once)."""
    pending = CampaignLine.objects.filter(
        campaign_id=campaign_id, status__in=[CampaignLine.Status.PENDING, CampaignLine.Status.CLAIMED]
    )
    with transaction.atomic():
        updated = (
            Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING)
            .exclude(pk__in=pending.values("campaign_id"))
            .update(status=Campaign.Status.DONE, finished_at=timezone.now())
        )
        if updated:
            campaign = Campaign.objects.get(pk=campaign_id)
            progress = campaigns.progress(campaign)
            campaigns._audit(
                AuditEvent.Action.CAMPAIGN_FINISHED,
                campaign,
                None,
                sent=progress.sent,
                returned=progress.returned,
                failed=progress.failed,
            )
    return bool(updated)


def sweep(now=None) -> dict:
    """Periodic: finish what is done; re-queue stalled campaigns (with a broker) or send a
    time-boxed batch of each sending campaign (embedded set-up, no broker)."""
    now = now or timezone.now()
    eager = current_app.conf.task_always_eager
    stall = datetime.timedelta(seconds=settings.AUTOMATION_CAMPAIGN_STALL_SECONDS)
    result = {"finished": 0, "requeued": 0, "sent_batches": 0}
    for campaign in Campaign.objects.filter(status=Campaign.Status.SENDING).order_by("pk"):
        if finish_if_done(campaign.pk):
            result["finished"] += 1
            continue
        if eager:
            process_batch(campaign.pk, budget_seconds=settings.AUTOMATION_EMBEDDED_BUDGET_SECONDS)
            result["sent_batches"] += 1
            continue
        quiet_since = campaign.last_progress_at or campaign.started_at
        if quiet_since is None or quiet_since <= now - stall:
            # Claimed before queueing, so two sweepers never both re-queue.
            claimed = (
                Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SENDING)
                .filter(Q(last_progress_at=campaign.last_progress_at) if campaign.last_progress_at else Q())
                .update(last_progress_at=now)
            )
            if claimed:
                log.info("campaign stalled, batches re-queued: campaign=%s", campaign.pk)
                enqueue(campaign.pk)
                result["requeued"] += 1
    return result
