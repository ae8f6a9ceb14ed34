"""`manage.py runsubmission [--host H] [--port P]`: SMTP submission for desktop clients and
practice software (issue 11). Defaults: SUBMISSION_HOST, SUBMISSION_PORT (1587). STARTTLS is
required before AUTH when CLIENTS_TLS_CERT / CLIENTS_TLS_KEY are set. See docs/desktop-clients.md.
"""

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand

from clients.submission import serve


class Command(BaseCommand):
    help = "Serveur de soumission SMTP des clients de messagerie et logiciels de professionnels de santé."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SUBMISSION_HOST)
        parser.add_argument("--port", type=int, default=settings.SUBMISSION_PORT)

    def handle(self, *args, host, port, **options):
        def ready():
            self.stdout.write(f"Submission server ready on {host}:{port}")
            self.stdout.flush()

        asyncio.run(serve(host, port, ready=ready))
