"""The embedded scheduler runs the same periodic jobs as Celery beat (CELERY_BEAT_SCHEDULE)."""

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from django.core.management import call_command
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent
from tests.operations.test_log_redaction_servers import ROOT, server_env, var_dir  # noqa: F401 - its fixture


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


def run_scheduler_once(var: Path, **extra: str) -> subprocess.CompletedProcess:
    """`manage.py runscheduler --once` as scripts/run starts the scheduler (no broker: the tasks
    run in process), logging at INFO."""
    env = {**server_env(var, debug=True), "LOG_LEVEL": "INFO", **extra}
    done = subprocess.run(
        [sys.executable, "manage.py", "runscheduler", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_embedded_scheduler_writes_no_line_per_task(var_dir):  # noqa: F811
    quiet = run_scheduler_once(var_dir)
    ran = re.search(r"^(\d+) of (\d+) jobs ran: ", quiet.stdout, flags=re.MULTILINE)
    assert ran and int(ran.group(1)) >= 10, quiet.stdout
    assert "celery.app.trace" not in quiet.stderr and " succeeded in " not in quiet.stderr
    # The lines are still there for an operator who asks for them, one per job that ran.
    loud = run_scheduler_once(var_dir, TASK_TRACE_LOG_LEVEL="INFO")
    traced = [x for x in loud.stderr.splitlines() if " INFO celery.app.trace " in x and " succeeded in " in x]
    assert len(traced) >= int(re.search(r"^(\d+) of", loud.stdout, flags=re.MULTILINE).group(1))
