"""Celery tasks of the operator: thin wrappers that take ids (STYLE.md §4)."""

from celery import shared_task


@shared_task(acks_late=True)
def relay_outbox(outbox_id: int) -> None:
    """Send one Outbox row through the SMTP relay (implemented by the transport work)."""
    from mailboxes import relay

    send = getattr(relay, "send_outbox", None)
    if send is not None:
        send(outbox_id)
