from datetime import timedelta

from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent


@override_settings(AUDIT_RETENTION_DAYS=183)
def test_events_older_than_the_retention_are_purged_and_recent_ones_kept(db, capsys):
    old = record(AuditEvent.Action.READ, actor_label="test", object_type="message", object_id=1)
    recent = record(AuditEvent.Action.READ, actor_label="test", object_type="message", object_id=2)
    AuditEvent.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=184))
    AuditEvent.objects.filter(pk=recent.pk).update(at=timezone.now() - timedelta(days=182))

    call_command("purge_audit")

    assert list(AuditEvent.objects.values_list("pk", flat=True)) == [recent.pk]
    assert "1 trace(s) supprimée(s)" in capsys.readouterr().out


def test_the_purge_is_scheduled_daily():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["purge-audit-events"]
    assert entry["task"] == "audit.tasks.purge_audit_events"
    assert entry["schedule"] == 24 * 3600
