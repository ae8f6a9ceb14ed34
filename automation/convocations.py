"""Convocations and their reminders (issue 9 item 3; RULES.md §4 "convocation, reminders D-7
then D-1").

- `create_convocation` sends the model's message with an `.ics` invitation (METHOD:REQUEST);
  `reschedule` sends an update with the same UID and a higher SEQUENCE; `cancel` sends
  METHOD:CANCEL. Each is audited (ids only). Neither a new convocation nor a move may point at
  a moment already past (`check_upcoming`): the patient would be summoned to yesterday.
- Reminders are rows computed from the model's `reminder_days` at the configured local time of
  day (`AUTOMATION_REMINDER_TIME`, Europe/Paris, so a reminder keeps its wall-clock hour across a
  change of summer time); one whose moment has passed when it is computed is never sent.
- `send_due_reminders` (Celery beat, or the embedded `runscheduler`) claims due rows by a
  conditional UPDATE inside the transaction that stores the reminder's message: a reminder is
  sent once or not at all, whatever crashes; a cancelled or moved convocation's reminders are
  skipped.

A refusal of the delivery path (closed space…) undoes the change it came with but keeps the
refusal's audit event: the change is reverted inside the same transaction, never rolled back.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.events import record
from audit.models import AuditEvent
from automation import calendar, fields, sending
from automation.models import Convocation, Reminder
from mailboxes.delivery import DeliveryRefused

log = logging.getLogger(__name__)

DATE_FORMATS = ("%d/%m/%Y", "%d/%m/%y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y")
TIME_RE = re.compile(r"^\s*(\d{1,2})\s*(?:[:hH]\s*(\d{2})?)?\s*$")


class InvalidAppointment(ValueError):
    """A date or time that cannot be read; the message says which, in French."""


def parse_appointment(date_text: str, time_text: str) -> datetime.datetime:
    """The aware local datetime of a date (`14/03/2027`, `2027-03-14`…) and a time (`09:30`,
    `9h30`, `14 h`)."""
    return combine(parse_date(date_text), parse_time(time_text))


def parse_date(date_text: str) -> datetime.date:
    """The day of `14/03/2027`, `2027-03-14`…; `InvalidAppointment` (in French) otherwise."""
    date_text = (date_text or "").strip()
    if not date_text:
        raise InvalidAppointment(_("La date du rendez-vous manque."))
    for pattern in DATE_FORMATS:
        try:
            return datetime.datetime.strptime(date_text, pattern).date()
        except ValueError:
            continue
    raise InvalidAppointment(_("Date illisible « %(v)s » : écrivez-la jj/mm/aaaa.") % {"v": date_text[:40]})


def parse_time(time_text: str) -> datetime.time:
    """The time of day of `09:30`, `9h30`, `14 h`; `InvalidAppointment` (in French) otherwise."""
    time_text = (time_text or "").strip()
    if not time_text:
        raise InvalidAppointment(_("L'heure du rendez-vous manque."))
    match = TIME_RE.match(time_text)
    if not match or int(match.group(1)) > 23 or int(match.group(2) or 0) > 59:
        raise InvalidAppointment(_("Heure illisible « %(v)s » : écrivez-la hh:mm.") % {"v": time_text[:40]})
    return datetime.time(int(match.group(1)), int(match.group(2) or 0))


def combine(day: datetime.date, moment: datetime.time) -> datetime.datetime:
    """The aware local datetime of a day and a time of day (settings.TIME_ZONE)."""
    return datetime.datetime.combine(day, moment, tzinfo=ZoneInfo(settings.TIME_ZONE))


class PastAppointment(InvalidAppointment):
    """An appointment whose moment has already passed."""


def check_upcoming(starts_at: datetime.datetime) -> None:
    """Raise `PastAppointment` (naming the moment, in French) unless `starts_at` is to come."""
    if starts_at <= timezone.now():
        when = fields.appointment_values(starts_at)
        raise PastAppointment(
            _("Le rendez-vous du %(date)s à %(time)s est déjà passé : choisissez une date et une heure à venir.")
            % {"date": when["date_rdv"], "time": when["heure_rdv"]}
        )


def appointment_details(model, values: dict) -> dict:
    """The convocation's columns from the field values of its message."""
    professional = " ".join(p for p in (values.get("titre_professionnel"), values.get("nom_professionnel")) if p)
    return {
        "service": (values.get("service") or model.service)[:120],
        "place": (values.get("lieu") or "")[:300],
        "professional": professional[:200],
        "reason": (values.get("motif") or "")[:300],
    }


# --- Reminders: when ---------------------------------------------------------------------


def reminder_time() -> datetime.time:
    hours, _sep, minutes = settings.AUTOMATION_REMINDER_TIME.partition(":")
    return datetime.time(int(hours), int(minutes or 0))


def reminder_due_at(starts_at: datetime.datetime, days_before: int) -> datetime.datetime:
    """D-n at the reminder hour, in local time (the offset of *that* day, summer or winter)."""
    zone = ZoneInfo(settings.TIME_ZONE)
    day = timezone.localtime(starts_at, zone).date() - datetime.timedelta(days=days_before)
    return datetime.datetime.combine(day, reminder_time(), tzinfo=zone)


def new_reminders(convocation: Convocation, now=None) -> list[Reminder]:
    """The unsaved reminders of the convocation's current SEQUENCE; those already past are
    written as skipped (never sent late)."""
    now = now or timezone.now()
    rows = []
    for days in sorted(set(convocation.model.reminder_days or []), reverse=True):
        due = reminder_due_at(convocation.starts_at, days)
        late = due <= now or due >= convocation.starts_at
        rows.append(
            Reminder(
                convocation=convocation,
                sequence=convocation.sequence,
                days_before=days,
                due_at=due,
                status=Reminder.Status.SKIPPED if late else Reminder.Status.PENDING,
                reason="past" if late else "",
            )
        )
    return rows


def _skip_pending_reminders(convocation: Convocation, reason: str) -> None:
    Reminder.objects.filter(convocation=convocation, status=Reminder.Status.PENDING).update(
        status=Reminder.Status.SKIPPED, reason=reason
    )


# --- Creating, moving, cancelling --------------------------------------------------------


def compose_convocation(convocation: Convocation, cache: sending.AttachmentCache | None = None):
    """(Composed, attachments) of a convocation's first message: the model's text and standing
    attachments, then the invitation."""
    composed = sending.compose(convocation.version, convocation.patient, convocation.values, convocation.starts_at)
    attachments = list((cache or sending.AttachmentCache()).get(convocation.version))
    attachments.append(calendar.attachment(convocation, "REQUEST", description=composed.subject))
    return composed, attachments


def new_convocation(*, model, patient, starts_at, user, values=None, duration_minutes=30) -> Convocation:
    """The unsaved convocation of `patient` by the current version of `model`, its columns
    (service, place, professional, reason) from the field values."""
    values = dict(values or {})
    return Convocation(
        model=model,
        version=model.current,
        mailbox=model.mailbox,
        patient=patient,
        starts_at=starts_at,
        duration_minutes=duration_minutes,
        values=values,
        created_by=user if getattr(user, "is_authenticated", False) else None,
        **appointment_details(model, values),
    )


def record_sent(convocation: Convocation, user, message) -> None:
    """A convocation whose first message (`message`) left: stored with it, its reminders
    computed, its audit event written (in the caller's transaction)."""
    convocation.message = message
    convocation.save()
    Reminder.objects.bulk_create(new_reminders(convocation))
    _audit(AuditEvent.Action.CONVOCATION_SENT, convocation, user, message.pk)


def create_convocation(*, model, patient, starts_at, user, values=None, duration_minutes=30, source="webmail"):
    """Create and send a convocation. Raises `ValueError` (missing fields, named),
    `sending.DailyLimitReached` or `DeliveryRefused`; nothing is kept then but the audit.
    A moment already past raises `PastAppointment` before anything is composed or sent."""
    check_upcoming(starts_at)
    convocation = new_convocation(
        model=model, patient=patient, starts_at=starts_at, user=user, values=values, duration_minutes=duration_minutes
    )
    composed, attachments = compose_convocation(convocation)
    if composed.missing:
        raise ValueError(sending.missing_message(composed.missing))
    sending.check_daily_limit(model.mailbox, 1)
    refusal = None
    with transaction.atomic():
        convocation.save()
        try:
            outcome = sending.deliver(model.mailbox, user, patient, composed, attachments, source=source)
        except DeliveryRefused as exc:
            refusal = exc
            convocation.delete()
        else:
            record_sent(convocation, user, outcome.primary.message)
    if refusal is not None:
        raise refusal
    return convocation


def _fixed_message(convocation: Convocation, name: str, **extra) -> sending.Composed:
    """A message of the product (reminder, reschedule, cancellation) for a convocation."""
    values = fields.values_for(convocation.model, convocation.patient, convocation.values, convocation.starts_at)
    context = {**values, **extra, "convocation": convocation}
    subject = " ".join(render_to_string(f"automation/messages/{name}_subject.txt", context).split())
    text = render_to_string(f"automation/messages/{name}_body.txt", context)
    return sending.Composed(subject=subject, text=text, values=values)


def reschedule(convocation: Convocation, starts_at: datetime.datetime, user) -> Convocation:
    if convocation.status != Convocation.Status.SCHEDULED:
        raise ValueError(_("Cette convocation est annulée : elle ne peut plus être déplacée."))
    check_upcoming(starts_at)
    sending.check_daily_limit(convocation.mailbox, 1)
    previous = fields.appointment_values(convocation.starts_at)
    old = (convocation.starts_at, convocation.sequence)
    refusal = None
    with transaction.atomic():
        Convocation.objects.select_for_update().filter(pk=convocation.pk).first()
        convocation.starts_at, convocation.sequence = starts_at, convocation.sequence + 1
        composed = _fixed_message(
            convocation, "reschedule", date_avant=previous["date_rdv"], heure_avant=previous["heure_rdv"]
        )
        ics = calendar.attachment(convocation, "REQUEST", description=composed.subject)
        try:
            outcome = sending.deliver(convocation.mailbox, user, convocation.patient, composed, [ics], source="webmail")
        except DeliveryRefused as exc:
            refusal = exc
            convocation.starts_at, convocation.sequence = old
        else:
            convocation.message = outcome.primary.message
            convocation.save(update_fields=["starts_at", "sequence", "message", "updated_at"])
            _skip_pending_reminders(convocation, "rescheduled")
            Reminder.objects.bulk_create(new_reminders(convocation))
            _audit(AuditEvent.Action.CONVOCATION_RESCHEDULED, convocation, user, outcome.primary.message.pk)
    if refusal is not None:
        raise refusal
    return convocation


def cancel(convocation: Convocation, user) -> Convocation:
    """Cancel: the patient gets METHOD:CANCEL (their calendar removes the event); pending
    reminders are skipped. Cancelling stands even when the message cannot be delivered."""
    if convocation.status == Convocation.Status.CANCELLED:
        return convocation
    with transaction.atomic():
        Convocation.objects.select_for_update().filter(pk=convocation.pk).first()
        convocation.status = Convocation.Status.CANCELLED
        convocation.sequence += 1
        convocation.save(update_fields=["status", "sequence", "updated_at"])
        _skip_pending_reminders(convocation, "cancelled")
        composed = _fixed_message(convocation, "cancel")
        ics = calendar.attachment(convocation, "CANCEL", description=composed.subject)
        message_id = None
        try:
            outcome = sending.deliver(convocation.mailbox, user, convocation.patient, composed, [ics], source="webmail")
            message_id = outcome.primary.message.pk
        except DeliveryRefused:
            log.info("convocation cancelled, message refused: convocation=%s", convocation.pk)
        _audit(AuditEvent.Action.CONVOCATION_CANCELLED, convocation, user, message_id)
    return convocation


def _audit(action, convocation, user, message_id, **detail):
    record(
        action,
        actor=user,
        actor_label="" if getattr(user, "is_authenticated", False) else "automation",
        obj=convocation,
        mailbox_id=convocation.mailbox_id,
        message_id=message_id,
        detail={"sequence": convocation.sequence, "patient": convocation.patient_id, **detail},
    )


# --- Sending due reminders ---------------------------------------------------------------

CHUNK = 25


def send_due_reminders(now=None, budget_seconds: float | None = None) -> dict:
    """Send the reminders due at `now`, in chunks, each chunk one transaction with its claims;
    stop after `budget_seconds` (the next run goes on). Returns counts by outcome."""
    budget = settings.AUTOMATION_REMINDER_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    started = time.monotonic()
    counts = {"sent": 0, "skipped": 0, "failed": 0}
    cache = sending.AttachmentCache()
    while time.monotonic() - started < budget:
        done = _send_reminder_chunk(now or timezone.now(), cache, counts)
        if not done:
            break
    return counts


def _send_reminder_chunk(now, cache, counts) -> int:
    with transaction.atomic():
        ids = list(
            Reminder.objects.select_for_update(skip_locked=True)
            .filter(status=Reminder.Status.PENDING, due_at__lte=now)
            .order_by("due_at", "pk")
            .values_list("pk", flat=True)[:CHUNK]
        )
        if not ids:
            return 0
        # The claim: only rows still pending move on (a concurrent run got the others).
        Reminder.objects.filter(pk__in=ids, status=Reminder.Status.PENDING).update(
            status=Reminder.Status.SENDING, claimed_at=now
        )
        claimed = Reminder.objects.filter(pk__in=ids, status=Reminder.Status.SENDING, claimed_at=now).select_related(
            "convocation__model__mailbox__structure", "convocation__patient", "convocation__mailbox"
        )
        for reminder in claimed:
            status, reason, message_id = _send_reminder(reminder, now)
            Reminder.objects.filter(pk=reminder.pk).update(
                status=status, reason=reason, message_id=message_id, sent_at=now if message_id else None
            )
            counts[{"sent": "sent", "skipped": "skipped"}.get(status, "failed")] += 1
        return len(ids)


def _send_reminder(reminder: Reminder, now) -> tuple[str, str, int | None]:
    convocation = reminder.convocation
    if convocation.status != Convocation.Status.SCHEDULED:
        return Reminder.Status.SKIPPED, "cancelled", None
    if convocation.sequence != reminder.sequence:
        return Reminder.Status.SKIPPED, "rescheduled", None
    if convocation.starts_at <= now:
        return Reminder.Status.SKIPPED, "past", None
    # After an outage, a D-7 still pending beside a due D-1: only the nearest one leaves.
    nearer_due = Reminder.objects.filter(
        convocation=convocation,
        sequence=reminder.sequence,
        days_before__lt=reminder.days_before,
        due_at__lte=now,
        status__in=[Reminder.Status.PENDING, Reminder.Status.SENDING, Reminder.Status.SENT],
    ).exists()
    if nearer_due:
        return Reminder.Status.SKIPPED, "superseded", None
    try:
        sending.check_daily_limit(convocation.mailbox, 1, now)
    except sending.DailyLimitReached:
        return Reminder.Status.FAILED, "daily_limit", None
    composed = _fixed_message(convocation, "reminder", jours=reminder.days_before)
    try:
        with transaction.atomic():
            outcome = sending.deliver(convocation.mailbox, None, convocation.patient, composed, [], source="system")
    except DeliveryRefused as refusal:
        return Reminder.Status.FAILED, refusal.code[:60], None
    message_id = outcome.primary.message.pk
    _audit(AuditEvent.Action.REMINDER_SENT, convocation, None, message_id, reminder=reminder.pk)
    return Reminder.Status.SENT, "", message_id
