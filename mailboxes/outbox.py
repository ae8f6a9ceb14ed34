"""The relay's queue (DESIGN.md "Mail in and out"): an Outbox row written by the delivery path,
or taken back by the sweeper, goes to the task `mailboxes.tasks.relay_outbox`, queued by name so
that neither the delivery path nor the relay imports the tasks module."""

from django.conf import settings

from mailboxes import queueing


def enqueue(outbox_id: int) -> bool:
    # RELAY_QUEUE lets dedicated workers (`celery worker -Q relay`) carry the relay alone. A
    # broker that is down is logged, not raised: the sweeper queues the row later.
    return queueing.enqueue("mailboxes.tasks.relay_outbox", outbox_id, queue=settings.RELAY_QUEUE)
