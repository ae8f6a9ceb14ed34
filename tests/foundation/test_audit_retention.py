from datetime import timedelta

from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent


@override_settings(AUDIT_RETENTION_DAYS=183)
def test_events_older_than_the_retention_are_purged_and_recent_ones_kept(db, capsys):
    now = timezone.now()
    old = record(AuditEvent.Action.READ, actor_label="test", object_id=1, at=now - timedelta(days=184))
    recent = record(AuditEvent.Action.READ, actor_label="test", object_id=2, at=now - timedelta(days=182))

    call_command("purge_audit")

    purge = AuditEvent.objects.get(action=AuditEvent.Action.AUDIT_PURGED)
    assert set(AuditEvent.objects.values_list("pk", flat=True)) == {recent.pk, purge.pk}
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert "1 trace(s) supprimée(s)" in capsys.readouterr().out
    assert purge.detail["events"] == 1 and purge.detail["to"] == timezone.localdate(old.at).isoformat()


def test_the_purge_is_scheduled_daily():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["purge-audit-events"]
    assert entry["task"] == "audit.tasks.purge_audit_events"
    assert entry["schedule"] == 24 * 3600
