"""Celery tasks of the operator: thin wrappers that take ids (STYLE.md §4).

The work and its rules live in `mailboxes.relay` (issue 3 item 6). Both tasks are safe to run
twice: `relay_outbox` starts by claiming its row with a conditional update.
"""

from celery import shared_task

EAGER_IMMEDIATE_RETRIES = 5


@shared_task(bind=True, acks_late=True, max_retries=None, ignore_result=True)
def relay_outbox(self, outbox_id: int) -> None:
    """Send one Outbox row through the SMTP relay; retried with backoff on a temporary failure."""
    from mailboxes import relay

    retry_in = relay.send_outbox(outbox_id)
    if self.request.is_eager:
        # Without a broker nothing can wait: an immediate retry runs here, a later one is left
        # to the sweeper (beat or relay_sweep).
        for _ in range(EAGER_IMMEDIATE_RETRIES):
            if retry_in != 0:
                return
            retry_in = relay.send_outbox(outbox_id)
        return
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task(acks_late=True, ignore_result=True)
def sweep_outbox() -> dict:
    """Periodic (celery beat): re-queue pending rows whose task was lost and rows stuck in
    "sending" after a worker died."""
    from mailboxes import relay

    return relay.sweep_outbox()


@shared_task(acks_late=True, ignore_result=True)
def warn_inactive_mailboxes() -> int:
    """Daily (celery beat): warn the owners of boxes unused for nearly MAILBOX_INACTIVITY_DAYS
    (RULES.md §5); a box is warned once, so a second run is a no-op."""
    from mailboxes import inactivity

    return inactivity.warn_inactive_mailboxes()


@shared_task(acks_late=True, ignore_result=True)
def delete_inactive_mailboxes() -> int:
    """Daily (celery beat): delete the boxes still unused after the delay and the warning."""
    from mailboxes import inactivity

    return inactivity.delete_inactive_mailboxes()


@shared_task(acks_late=True, ignore_result=True)
def run_incoming_action(action_id: int) -> None:
    """An absence reply or a forward decided at delivery (mailboxes/box_actions.py); claimed
    by a conditional update, so a duplicate run is a no-op."""
    from mailboxes import box_actions

    box_actions.run_action(action_id)


@shared_task(acks_late=True, ignore_result=True)
def sweep_incoming_actions() -> int:
    """Periodic (celery beat): re-queue absence replies and forwards whose task was lost."""
    from mailboxes import box_actions

    return box_actions.sweep_actions()
