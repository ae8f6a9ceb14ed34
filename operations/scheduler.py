"""The embedded scheduler: Celery beat's schedule run in process, for the default set-up.

Production runs `celery beat` beside the workers. The run command of the README has no broker
(tasks run in process), so `manage.py runscheduler` reads the same `CELERY_BEAT_SCHEDULE` and
calls each task when it is due, one after the other. Every app adds its periodic work to that
one setting and nowhere else, so the two set-ups run the same jobs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from celery.schedules import maybe_schedule

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    task: str
    schedule: object
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    last_run_at: datetime | None = None


def jobs_from_settings(app) -> list[Job]:
    from django.conf import settings

    jobs = []
    for name, entry in sorted(settings.CELERY_BEAT_SCHEDULE.items()):
        jobs.append(
            Job(
                name=name,
                task=entry["task"],
                schedule=maybe_schedule(entry["schedule"], app=app),
                args=tuple(entry.get("args", ())),
                kwargs=dict(entry.get("kwargs", {})),
            )
        )
    return jobs


def run_due(app, jobs: list[Job], *, force: bool = False) -> tuple[list[str], float]:
    """Run every job that is due (all of them with `force`); return the names run and the
    number of seconds until one may next be due."""
    ran, wait = [], 60.0
    for job in jobs:
        if job.last_run_at is None:
            job.last_run_at = job.schedule.now()
        due, next_check = job.schedule.is_due(job.last_run_at)
        if due or force:
            job.last_run_at = job.schedule.now()
            try:
                app.tasks[job.task].apply(args=job.args, kwargs=job.kwargs, throw=True)
            except Exception:
                log.exception("scheduled job failed: job=%s", job.name)
            else:
                ran.append(job.name)
            due, next_check = job.schedule.is_due(job.last_run_at)
        wait = min(wait, max(float(next_check), 0.5))
    return ran, wait
