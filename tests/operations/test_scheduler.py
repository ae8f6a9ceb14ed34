"""The embedded scheduler runs the same periodic jobs as Celery beat (CELERY_BEAT_SCHEDULE)."""

from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent


def test_runscheduler_once_runs_every_beat_job(db, settings, capsys):
    settings.CELERY_BEAT_SCHEDULE = {
        "purge-audit-events": {"task": "audit.tasks.purge_audit_events", "schedule": 24 * 3600},
    }
    old = record(AuditEvent.Action.READ, at=timezone.now() - timedelta(days=settings.AUDIT_RETENTION_DAYS + 2))
    fresh = record(AuditEvent.Action.READ)

    call_command("runscheduler", "--once")

    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.filter(pk=fresh.pk).exists()
    assert "1 of 1 jobs ran: purge-audit-events" in capsys.readouterr().out


def test_a_failing_job_does_not_stop_the_others(db, settings):
    from mssante.celery import app
    from operations.scheduler import jobs_from_settings, run_due

    settings.CELERY_BEAT_SCHEDULE = {
        "a-broken": {"task": "no.such.task", "schedule": 60},
        "purge-audit-events": {"task": "audit.tasks.purge_audit_events", "schedule": 60},
    }
    app.loader.import_default_modules()
    jobs = jobs_from_settings(app)
    ran, wait = run_due(app, jobs, force=True)
    assert ran == ["purge-audit-events"]
    # Nothing is due right after a run: the next check is about one interval away.
    ran_again, wait = run_due(app, jobs)
    assert ran_again == []
    assert 0.5 <= wait <= 60
