from celery import shared_task

from audit.chain import seal_closed_days
from audit.retention import purge_expired_events


@shared_task(acks_late=True)
def purge_audit_events() -> int:
    return purge_expired_events()


@shared_task(acks_late=True)
def seal_audit_days() -> int:
    return len(seal_closed_days())
