"""The relay's queue (DESIGN.md "Mail in and out"): an Outbox row written by the delivery path,
or taken back by the sweeper, goes to the task `mailboxes.tasks.relay_outbox`, queued by name so
that neither the delivery path nor the relay imports the tasks module."""

from celery import signature
from django.conf import settings


def enqueue(outbox_id: int) -> None:
    # RELAY_QUEUE lets dedicated workers (`celery worker -Q relay`) carry the relay alone.
    signature("mailboxes.tasks.relay_outbox", args=(outbox_id,)).apply_async(queue=settings.RELAY_QUEUE or None)
