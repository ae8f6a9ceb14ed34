"""`manage.py relay_sweep`: re-queue relay work whose task was lost (cron-only installs).

The same work as the Celery beat entry `relay-sweep-outbox` (docs/smtp.md). Without a broker
(embedded default) the re-queued rows are sent right here, in this process.
"""

from django.core.management.base import BaseCommand

from mailboxes.relay import sweep_outbox


class Command(BaseCommand):
    help = "Relance les envois sortants en attente ou bloqués (relais SMTP)."

    def handle(self, *args, **options):
        counts = sweep_outbox()
        self.stdout.write(f"relay sweep: {counts['pending']} pending, {counts['stuck']} stuck re-queued")
