"""Retention of the audit trail (RULES.md §5): events are kept AUDIT_RETENTION_DAYS (6 months by
default), then deleted a whole sealed day at a time (audit/chain.py), in batches so that a large
purge never holds a long lock. The day's seal stays (ids and hashes only), marked purged, and the
purge itself is an audit event naming the days, the count and the last seal's hash: the trail
that remains still proves it continues from what was purged."""

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.chain import seal_closed_days
from audit.events import record
from audit.models import AuditChain, AuditEvent, AuditSeal

BATCH = 5000


def purge_expired_events(now=None) -> int:
    now = now or timezone.now()
    seal_closed_days(now)
    cutoff = timezone.localdate(now - timedelta(days=settings.AUDIT_RETENTION_DAYS))
    chain_days = set(AuditChain.objects.filter(day__lt=cutoff).values_list("day", flat=True))
    seals = AuditSeal.objects.filter(day__lt=cutoff).order_by("day")
    seals = [s for s in seals.filter(purged_at__isnull=True)] + [
        s for s in seals.filter(purged_at__isnull=False, day__in=chain_days)
    ]
    deleted = 0
    for seal in sorted(seals, key=lambda s: s.day):
        if seal.purged_at is None:
            AuditSeal.objects.filter(pk=seal.pk).update(purged_at=now)
        deleted += _delete_day(seal.day)
    if seals:
        last = max(seals, key=lambda s: s.day)
        record(
            AuditEvent.Action.AUDIT_PURGED,
            actor_label="retention",
            object_type="auditseal",
            object_id=last.pk,
            outcome="ok",
            detail={
                "from": min(s.day for s in seals).isoformat(),
                "to": last.day.isoformat(),
                "days": len(seals),
                "events": deleted,
                "last_seal": last.hash,
            },
        )
    return deleted


def _delete_day(day) -> int:
    """Delete the events of one sealed day, batch by batch, then its chain heads. The ORM
    refuses to delete audit rows (they are append-only): this one statement is the exception."""
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    statement = f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE chain_id = %s LIMIT %s)"  # noqa: S608
    deleted = 0
    for chain_id in AuditChain.objects.filter(day=day).values_list("pk", flat=True):
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement, [chain_id, BATCH])
                count = cursor.rowcount
            deleted += count
            if count < BATCH:
                break
        AuditChain.objects.filter(pk=chain_id).delete()
    return deleted
