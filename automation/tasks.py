"""Celery tasks of automation: thin, taking ids (STYLE.md §4). The work lives in
`automation.campaign_sending` and `automation.convocations`."""

from celery import shared_task
from django.conf import settings


@shared_task(bind=True, acks_late=True, ignore_result=True)
def send_campaign_batch(self, campaign_id: int) -> None:
    """Send a batch of a campaign's lines, then queue the next batch while lines remain."""
    from automation import campaign_sending

    more = campaign_sending.process_batch(campaign_id)
    if more and not self.request.is_eager:
        send_campaign_batch.apply_async((campaign_id,), queue=settings.AUTOMATION_QUEUE or None)


@shared_task(acks_late=True, ignore_result=True)
def sweep_campaigns() -> dict:
    """Periodic (beat): finish campaigns with nothing left, re-queue stalled ones; without a
    broker, send a time-boxed batch of each sending campaign."""
    from automation import campaign_sending

    return campaign_sending.sweep()


@shared_task(acks_late=True, ignore_result=True)
def send_due_reminders() -> dict:
    """Periodic (beat): send the convocation reminders that are due (D-7, D-1…)."""
    from automation import convocations

    return convocations.send_due_reminders()
