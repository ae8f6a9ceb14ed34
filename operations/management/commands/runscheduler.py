import signal
import threading

from django.core.management.base import BaseCommand

from operations.scheduler import jobs_from_settings, run_due


class Command(BaseCommand):
    help = (
        "Runs the periodic jobs of CELERY_BEAT_SCHEDULE in this process (the embedded set-up; "
        "production runs `celery beat`)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run every job once, then exit.")

    def handle(self, *args, once=False, **options):
        from mssante.celery import app

        app.loader.import_default_modules()
        jobs = jobs_from_settings(app)
        if once:
            ran, _wait = run_due(app, jobs, force=True)
            self.stdout.write(f"{len(ran)} of {len(jobs)} jobs ran: {', '.join(ran)}")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"Scheduler: {len(jobs)} periodic jobs ({', '.join(j.name for j in jobs)})")
        while not stop.is_set():
            _ran, wait = run_due(app, jobs)
            stop.wait(min(wait, 5.0))
