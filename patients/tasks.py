"""Celery tasks of the patient space: thin wrappers taking ids or plain strings, safe to run
twice (STYLE.md §4). RULES.md §3: notifications and automatic returns. Arguments are row ids,
never addresses, names, subjects or INS."""

import smtplib

from celery import shared_task

from mailboxes.models import Message
from patients import notifications, returns


@shared_task(
    acks_late=True,
    autoretry_for=(smtplib.SMTPException, ConnectionError, TimeoutError, OSError),
    retry_backoff=30,
    retry_backoff_max=3600,
    max_retries=8,
)
def send_notification(notification_id: int) -> None:

    notifications.send_notification(notification_id)


@shared_task(acks_late=True, autoretry_for=(ConnectionError, TimeoutError), retry_backoff=30, max_retries=5)
def send_automatic_return(pending_return_id: int) -> None:

    returns.send_pending_return(pending_return_id)


@shared_task(acks_late=True, autoretry_for=(ConnectionError, TimeoutError), retry_backoff=30, max_retries=5)
def answer_test_address(message_id: int) -> None:

    message = Message.objects.filter(pk=message_id).first()
    if message is not None:
        returns.answer_test_address(message)
