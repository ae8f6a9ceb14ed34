"""Celery tasks of the API: thin, take ids, safe to run twice (STYLE.md §4)."""

from celery import shared_task

from api import returns, webhooks


@shared_task(bind=True, acks_late=True, max_retries=None, ignore_result=True)
def deliver_webhook(self, delivery_id: int) -> None:
    """POST one webhook delivery; retried with backoff (the row's `next_attempt_at`). Run
    eagerly (no broker), a retry is left to the sweeper."""
    retry_in = webhooks.deliver(delivery_id)
    if retry_in is not None and not self.request.is_eager:
        raise self.retry(countdown=retry_in)


@shared_task(acks_late=True, ignore_result=True)
def sweep_webhooks() -> dict:
    """Periodic (beat / runscheduler): re-queue due and stuck webhook deliveries."""
    return webhooks.sweep()


@shared_task(acks_late=True, ignore_result=True)
def collect_return_replies() -> int:
    """Periodic (beat / runscheduler): enter patients' replies the receiver missed."""
    return returns.sweep()


@shared_task(acks_late=True, ignore_result=True)
def purge_idempotency_records() -> int:
    """Periodic (beat / runscheduler): forget Idempotency-Key answers older than the window."""
    from api import idempotency

    return idempotency.purge()
