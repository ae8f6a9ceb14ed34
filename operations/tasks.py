"""Periodic work of the operations app: thin tasks (CELERY_BEAT_SCHEDULE in settings)."""

import datetime

from celery import shared_task
from django.utils import timezone

from operations import store_sweep
from operations.models import Heartbeat


@shared_task(acks_late=True)
def heartbeat() -> str:
    """Celery beat (or runscheduler) and a worker are alive: /readyz reads the time."""
    now = timezone.now()
    Heartbeat.objects.update_or_create(name=Heartbeat.BEAT, defaults={"at": now})
    return now.isoformat()


@shared_task(acks_late=True)
def aggregate_statistics(days: int = 3) -> int:
    """Recompute the daily statistics of the last `days` days (late relays and reads change
    them): idempotent, each day's rows are replaced."""
    from operations.statistics import aggregate_day

    today = timezone.localdate()
    return sum(aggregate_day(today - datetime.timedelta(days=n)) for n in range(days, -1, -1))


@shared_task(acks_late=True)
def sweep_store() -> int:
    """Stored files that no row names to quarantine, and out of it (operations/store_sweep.py)."""
    report = store_sweep.sweep_store()
    return report.quarantined + report.deleted
