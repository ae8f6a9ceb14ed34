"""`manage.py runimapd [--host H] [--port P] [--tls-port P]`: the IMAP server for desktop clients
and practice software (issue 11). Defaults: IMAP_HOST, IMAP_PORT (1143), IMAP_TLS_PORT (off);
STARTTLS is offered, and passwords refused in clear, when CLIENTS_TLS_CERT / CLIENTS_TLS_KEY are
set. Stops cleanly on SIGTERM or SIGINT. See docs/desktop-clients.md.
"""

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand

from clients.imap.server import serve


class Command(BaseCommand):
    help = "Serveur IMAP des clients de messagerie et logiciels de professionnels de santé."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.IMAP_HOST)
        parser.add_argument("--port", type=int, default=settings.IMAP_PORT)
        parser.add_argument("--tls-port", type=int, default=settings.IMAP_TLS_PORT)

    def handle(self, *args, host, port, tls_port, **options):
        def ready():
            self.stdout.write(f"IMAP server ready on {host}:{port}")
            self.stdout.flush()

        asyncio.run(serve(host, port, tls_port or None, ready=ready))
