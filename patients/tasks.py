"""Celery tasks of the patient space: thin wrappers taking ids, safe to run twice (STYLE.md §4).
RULES.md §3: notifications and automatic returns. Arguments are row ids, never addresses,
names, subjects or INS.

Notifications and automatic returns follow the relay's discipline (`mailboxes.queueing`): the
row is claimed by a conditional update, a temporary failure is retried with backoff (through
Celery's countdown with a broker; by the sweeper without one), a permanent one is recorded, and
the beat sweepers below take back rows whose task was lost or whose worker died.
"""

import logging

from celery import shared_task
from django.conf import settings

from mailboxes import queueing
from mailboxes.models import Message
from patients import notifications, returns

log = logging.getLogger(__name__)


def _retry(task, retry_in: int | None) -> None:
    # Without a broker nothing can wait in a queue: the sweeper (runscheduler) retries.
    if retry_in is not None and not task.request.is_eager:
        raise task.retry(countdown=retry_in)


@shared_task(bind=True, acks_late=True, max_retries=None, ignore_result=True)
def send_notification(self, *notification_ids: int) -> None:
    """One notification, or the notifications of one delivery transaction (a campaign's chunk,
    `queueing.enqueue_together_on_commit`), each claimed on its own. A temporary failure of one
    of several is queued again on its own, after its backoff."""
    if len(notification_ids) == 1:
        _retry(self, notifications.send_notification(notification_ids[0]))
        return
    for notification_id in notification_ids:
        try:
            retry_in = notifications.send_notification(notification_id)
        except Exception:  # one row's trouble never holds back the others; the sweeper takes it
            log.exception("notification task failed: id=%s", notification_id)
            continue
        if retry_in is not None and not self.request.is_eager:
            # A broker that is down is logged: the row is due again, so the sweeper queues it.
            queueing.enqueue(
                "patients.tasks.send_notification", notification_id, queue=settings.RELAY_QUEUE, countdown=retry_in
            )


@shared_task(bind=True, acks_late=True, max_retries=None, ignore_result=True)
def send_automatic_return(self, pending_return_id: int) -> None:
    _retry(self, returns.send_pending_return(pending_return_id))


@shared_task(acks_late=True, ignore_result=True)
def sweep_notifications() -> dict:
    """Periodic (celery beat, `runscheduler`): notifications whose task was lost (a flushed
    broker) or whose worker died."""
    return notifications.sweep_notifications()


@shared_task(acks_late=True, ignore_result=True)
def sweep_automatic_returns() -> dict:
    """Periodic (celery beat, `runscheduler`): automatic returns whose task was lost or whose
    worker died."""
    return returns.sweep_returns()


@shared_task(acks_late=True, autoretry_for=(ConnectionError, TimeoutError), retry_backoff=30, max_retries=5)
def answer_test_address(message_id: int) -> None:

    message = Message.objects.filter(pk=message_id).first()
    if message is not None:
        returns.answer_test_address(message)
