"""Notifications to personal addresses (RULES.md §3): "a message waits for you, sign in".

A patient gets one on each new message; a professional who chose `notify_patient_replies` gets
one when a patient replies. They carry no health content: no structure or professional name
(only "un professionnel de santé"), no subject, no body, no attachment name, no patient name:
an invitation and a link to sign in. Each e-mail is a template triple in `templates/emails/`.

Rows are written in the delivery transaction and the task is queued with `on_commit`; the task
claims its row with a conditional update, so running it twice sends one e-mail.
"""

import logging

from celery import signature
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent
from mailboxes.models import Entry, Mailbox, Message
from patients.models import Notification

log = logging.getLogger(__name__)

TEMPLATES = {
    Notification.Kind.PATIENT: "emails/patient_new_message",
    Notification.Kind.PROFESSIONAL: "emails/pro_patient_reply",
}


def _enqueue(notification_ids: list[int]) -> None:
    for notification_id in notification_ids:
        transaction.on_commit(
            lambda n=notification_id: signature("patients.tasks.send_notification", args=(n,)).delay()
        )


def _entry(message: Message, box: Mailbox) -> Entry | None:
    return Entry.objects.filter(mailbox=box, message=message).first()


def queue_patient_notification(message: Message, box: Mailbox) -> None:
    entry = _entry(message, box)
    if entry is None:
        return
    notification, created = Notification.objects.get_or_create(entry=entry, kind=Notification.Kind.PATIENT, user=None)
    if created:
        _enqueue([notification.pk])


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


def recipient_email(notification: Notification) -> str:
    if notification.kind == Notification.Kind.PATIENT:
        patient = getattr(notification.entry.mailbox, "patient", None)
        return (patient.notification_email if patient else "") or ""
    return (notification.user.email if notification.user else "") or ""


def render(notification: Notification) -> tuple[str, str, str]:
    """Subject, text and HTML of the notification: only the sign-in link varies."""
    base = TEMPLATES[notification.kind]
    path = reverse("patients:inbox") if notification.kind == Notification.Kind.PATIENT else reverse("home")
    context = {"sign_in_url": f"{settings.SITE_URL}{path}", "site_url": settings.SITE_URL}
    subject = " ".join(render_to_string(f"{base}_subject.txt", context).split())
    text = render_to_string(f"{base}_body.txt", context)
    html = render_to_string(f"{base}_body.html", context)
    return subject, text, html


def send_notification(notification_id: int) -> bool:
    """Send one notification if nobody did yet. True when this call sent it."""
    claimed = Notification.objects.filter(pk=notification_id, status=Notification.Status.PENDING).update(
        status=Notification.Status.SENDING
    )
    if not claimed:
        return False
    notification = Notification.objects.select_related("entry__mailbox", "user").filter(pk=notification_id).first()
    if notification is None:  # the message was deleted meanwhile: nothing to announce
        return False
    address = recipient_email(notification)
    if not address:
        Notification.objects.filter(pk=notification_id).update(status=Notification.Status.SKIPPED)
        return False
    subject, text, html = render(notification)
    email = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [address])
    email.attach_alternative(html, "text/html")
    try:
        email.send()
    except Exception:
        # Back to pending so the retry (or the next run) sends it.
        Notification.objects.filter(pk=notification_id).update(
            status=Notification.Status.PENDING, attempts=notification.attempts + 1
        )
        raise
    Notification.objects.filter(pk=notification_id).update(status=Notification.Status.SENT, sent_at=timezone.now())
    record(
        AuditEvent.Action.NOTIFIED,
        actor_label="celery",
        obj=notification,
        mailbox_id=notification.entry.mailbox_id,
        message_id=notification.entry.message_id,
        detail={"kind": notification.kind},
    )
    log.info("notification sent: id=%s entry=%s", notification_id, notification.entry_id)
    return True
