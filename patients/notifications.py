"""Notifications to personal addresses (RULES.md §3): "a message waits for you, sign in".

A patient gets one on each new message; a professional who chose `notify_patient_replies` gets
one when a patient replies. They carry no health content: no structure or professional name
(only "un professionnel de santé"), no subject, no body, no attachment name, no patient name:
an invitation and a link to sign in. Each e-mail is a template triple in `templates/emails/`.

Rows are written in the delivery transaction and the task is queued after commit; the task
claims its row with a conditional update, so running it twice sends one e-mail. The relay's
discipline (`mailboxes.queueing`): a 4xx or a connection problem is retried with backoff, a 5xx
is recorded as failed, and the beat sweeper `sweep_notifications` takes back rows whose task was
lost (a flushed broker) or whose worker died.
"""

import functools
import logging
import smtplib
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent
from mailboxes import queueing, relay
from mailboxes.models import Entry, Mailbox, Message
from mssante.sql import column, table
from patients.models import Notification, Patient

log = logging.getLogger(__name__)

TEMPLATES = {
    Notification.Kind.PATIENT: "emails/patient_new_message",
    Notification.Kind.PROFESSIONAL: "emails/pro_patient_reply",
}


NOTIFICATION, ENTRY, PATIENT, USER = (
    table(m) for m in (Notification, Entry, Patient, Notification._meta.get_field("user").related_model)
)
# The notification to send, its entry's box and message, and the personal address it goes to,
# in one statement written once (the task runs for every message a patient receives: the ORM's
# select_related of the entry, its box and the account, then the box's patient, were most of its
# CPU). A patient's notification goes to the patient of the entry's box, a professional's to the
# account's e-mail. Table and column names from the models; every value is a bound parameter.
TO_SEND_SQL = (
    "SELECT n.*, e.mailbox_id AS box_id, e.message_id AS entry_message_id, "  # noqa: S608
    "CASE WHEN n.kind = %s THEN p.notification_email ELSE u.email END AS address "
    f"FROM {NOTIFICATION} n JOIN {ENTRY} e ON e.id = n.entry_id "
    f"LEFT JOIN {PATIENT} p ON p.mailbox_id = e.mailbox_id "
    f"LEFT JOIN {USER} u ON u.id = n.user_id WHERE n.id = %s"
)


def _enqueue(notification_ids: list[int]) -> None:
    # Mail going out: the relay's workers (RELAY_QUEUE) carry it, one task for the notifications
    # of one transaction (a campaign's chunk). A broker that is down is logged, not raised;
    # `sweep_notifications` queues the rows later.
    for notification_id in notification_ids:
        queueing.enqueue_together_on_commit(
            "patients.tasks.send_notification", notification_id, queue=settings.RELAY_QUEUE
        )


def _entry(message: Message, box: Mailbox) -> Entry | None:
    return Entry.objects.filter(mailbox=box, message=message).first()


@functools.cache
def _patient_notification_insert() -> tuple[list, str]:
    """(the fields given as values, the statement) of `queue_patient_notification`, written once.
    Table and column names from the models; every value is a bound parameter."""
    fields = [f for f in Notification._meta.concrete_fields if not f.primary_key and f.name != "entry"]
    columns = ", ".join(column(Notification, f.name) for f in fields)
    sql = (
        f"INSERT INTO {NOTIFICATION} ({column(Notification, 'entry')}, {columns}) "  # noqa: S608
        f"SELECT e.id, {', '.join(['%s'] * len(fields))} FROM {ENTRY} e "
        f"JOIN {PATIENT} p ON p.mailbox_id = e.mailbox_id "
        "WHERE e.mailbox_id = %s AND e.message_id = %s RETURNING id"
    )
    return fields, sql


def queue_patient_notification(message: Message, box: Mailbox) -> bool:
    """Called by the delivery path's policy (`after_delivery`) in the transaction that has just
    written the box's entry: no other transaction sees that entry yet, so no notification of it
    can exist, and the row is created without a look-up first (nor the savepoint of a
    get_or_create). One statement (issue 10): the row is inserted from the box's entry of the
    message, joined with the box's patient, so a box without a patient gets none. Returns
    whether one was queued."""
    sql, params = patient_notification_insert(message, box)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [pk for (pk,) in cursor.fetchall()]
    return queued(ids)


def patient_notification_insert(message: Message, box: Mailbox) -> tuple[str, list]:
    """(statement, parameters) of `queue_patient_notification`'s INSERT (RETURNING the id), for a
    caller that runs it as a part of a statement of its own (`patients.policy`, issue 9); the
    ids it returns then go to `queued`."""
    row = Notification(kind=Notification.Kind.PATIENT, user=None)
    fields, sql = _patient_notification_insert()
    db = connections[DEFAULT_DB_ALIAS]  # resolved once, not through the proxy for every field
    values = [f.get_db_prep_save(f.pre_save(row, True), db) for f in fields]
    return sql, [*values, box.pk, message.pk]


def queued(notification_ids: list[int]) -> bool:
    """The new patient notifications' ids sent after the commit; whether there was one."""
    _enqueue(notification_ids)
    return bool(notification_ids)


def professional_users_to_notify(box: Mailbox) -> list:
    """The accounts of a box that asked to hear of patients' replies: a nominative box's owner,
    an organisational box's members who are professionals with the setting on."""
    if box.kind == Mailbox.Kind.NOMINATIVE:
        owner = box.owner
        if owner and owner.user_id and owner.notify_patient_replies:
            return [owner.user]
        return []
    return [
        membership.user
        for membership in box.memberships.select_related("user__professional")
        if getattr(getattr(membership.user, "professional", None), "notify_patient_replies", False)
    ]


def queue_professional_notifications(message: Message, box: Mailbox) -> None:
    entry = _entry(message, box)
    if entry is None:
        return
    ids = []
    for user in professional_users_to_notify(box):
        notification, created = Notification.objects.get_or_create(
            entry=entry, kind=Notification.Kind.PROFESSIONAL, user=user
        )
        if created:
            ids.append(notification.pk)
    _enqueue(ids)


def to_send(notification_id: int) -> Notification | None:
    """The notification with `box_id`, `entry_message_id` and `address` (the personal address,
    "" when there is none) read with it (TO_SEND_SQL); None when it is gone."""
    rows = Notification.objects.raw(TO_SEND_SQL, [Notification.Kind.PATIENT.value, notification_id])
    return next(iter(rows), None)


def render(notification: Notification) -> tuple[str, str, str]:
    """Subject, text and HTML of the notification: only the sign-in link varies."""
    base = TEMPLATES[notification.kind]
    path = reverse("patients:inbox") if notification.kind == Notification.Kind.PATIENT else reverse("home")
    context = {"sign_in_url": f"{settings.SITE_URL}{path}", "site_url": settings.SITE_URL}
    subject = " ".join(render_to_string(f"{base}_subject.txt", context).split())
    text = render_to_string(f"{base}_body.txt", context)
    html = render_to_string(f"{base}_body.html", context)
    return subject, text, html


def smtp_outcomes(exc: Exception) -> tuple[str, str]:
    """("temporary" | "permanent", error) of a failed send, classified like the relay's: a 5xx
    reply is final, a 4xx or a connection problem is retried."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code, text = next(iter(exc.recipients.values()))
    elif isinstance(exc, smtplib.SMTPResponseException):
        code, text = exc.smtp_code, exc.smtp_error
    else:
        return "temporary", type(exc).__name__
    outcome = relay.classify(code, text)
    return ("permanent" if outcome.kind == "permanent" else "temporary"), outcome.diagnostic


def send_notification(notification_id: int) -> int | None:
    """Send one notification if nobody did yet (claimed by a conditional update). Returns the
    seconds before the next attempt after a temporary failure, else None (sent, skipped,
    failed for good, or not this call's to send)."""
    if not queueing.claim(Notification, notification_id, flush=False):
        return None
    notification = to_send(notification_id)
    if notification is None:  # the message was deleted meanwhile: nothing to announce
        return None
    address = notification.address or ""
    if not address:
        queueing.finish(Notification, notification_id, Notification.Status.SKIPPED, flush=False)
        return None
    subject, text, html = render(notification)
    # One Message-ID per row, the same at every attempt: a receiver can tell a resend.
    message_id = f"<notification.{notification.pk}.{notification.created_at:%Y%m%d%H%M%S}@{settings.PATIENT_DOMAIN}>"
    email = EmailMultiAlternatives(
        subject, text, settings.DEFAULT_FROM_EMAIL, [address], headers={"Message-ID": message_id}
    )
    email.attach_alternative(html, "text/html")
    try:
        email.send()
    except (smtplib.SMTPException, OSError) as exc:
        return failed(notification, *smtp_outcomes(exc))
    queueing.finish(Notification, notification_id, Notification.Status.SENT, flush=False, sent_at=timezone.now())
    record(
        AuditEvent.Action.NOTIFIED,
        actor_label="celery",
        obj=notification,
        mailbox_id=notification.box_id,
        message_id=notification.entry_message_id,
        detail={"kind": notification.kind, "attempt": notification.attempts},
    )
    log.info("notification sent: id=%s entry=%s", notification_id, notification.entry_id)
    return None


def failed(notification: Notification, kind: str, error: str) -> int | None:
    """A temporary failure goes back in line with backoff until NOTIFICATION_RETRY_WINDOW_SECONDS
    have passed; a permanent one (or the window closed) is recorded as failed, with an audit
    event, and never retried."""
    window = timedelta(seconds=settings.NOTIFICATION_RETRY_WINDOW_SECONDS)
    if kind == "temporary" and timezone.now() - notification.created_at < window:
        retry_in = queueing.retry_later(Notification, notification.pk, notification.attempts, error)
        log.warning("notification retry: id=%s attempt=%s in=%ss", notification.pk, notification.attempts, retry_in)
        return retry_in
    queueing.finish(Notification, notification.pk, Notification.Status.FAILED, error)
    record(
        "notification.failed",
        actor_label="celery",
        obj=notification,
        mailbox_id=notification.box_id,
        message_id=notification.entry_message_id,
        outcome="failed",
        detail={"kind": notification.kind, "attempt": notification.attempts, "error": error[:120]},
    )
    log.warning("notification failed: id=%s attempt=%s", notification.pk, notification.attempts)
    return None


def sweep_notifications() -> dict[str, int]:
    """Periodic (beat, `runscheduler`): rows a lost task or a killed worker left behind."""
    return queueing.sweep(Notification, "patients.tasks.send_notification", queue=settings.RELAY_QUEUE)
