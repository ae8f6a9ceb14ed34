"""Retention of the audit trail (RULES.md §5): events are kept AUDIT_RETENTION_DAYS (6 months by
default), then deleted in batches so a large purge never holds a long lock."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from audit.models import AuditEvent

BATCH = 5000


def purge_expired_events(now=None) -> int:
    cutoff = (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    deleted = 0
    while True:
        ids = list(AuditEvent.objects.filter(at__lt=cutoff).values_list("pk", flat=True)[:BATCH])
        if not ids:
            return deleted
        deleted += AuditEvent.objects.filter(pk__in=ids).delete()[0]
