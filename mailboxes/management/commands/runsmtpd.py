"""`manage.py runsmtpd [--host H] [--port P]`: the inbound SMTP gateway (issue 3 item 5).

Defaults come from SMTPD_HOST / SMTPD_PORT / SMTPD_PROCESSES; STARTTLS is offered when SMTPD_TLS_CERT and
SMTPD_TLS_KEY are set (see docs/smtp.md). Stops cleanly on SIGTERM or SIGINT.
"""

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mailboxes.smtp_gateway import serve, serve_processes


class Command(BaseCommand):
    help = "Serveur SMTP entrant (passerelle des autres opérateurs MSSanté)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SMTPD_HOST)
        parser.add_argument("--port", type=int, default=settings.SMTPD_PORT)
        parser.add_argument(
            "--processes", type=int, default=settings.SMTPD_PROCESSES, help="processes sharing the port (one per core)"
        )

    def handle(self, *args, host, port, processes, **options):
        def ready():
            self.stdout.write(f"SMTP gateway ready on {host}:{port}")
            self.stdout.flush()

        if processes > 1:
            status = serve_processes(host, port, processes, ready=ready)
            if status:
                raise CommandError("an SMTP gateway process failed")
            return
        asyncio.run(serve(host, port, ready=ready))
