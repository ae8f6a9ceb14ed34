"""`manage.py reindex_search [--since AAAA-MM-JJ] [--queue-only]`: rebuild the webmail's search
documents (webmail/search_index.py), e.g. after changing SEARCH_BODY_CHARS."""

import datetime

from django.core.management.base import BaseCommand

from webmail.search_index import index_pending, mark_all_pending


class Command(BaseCommand):
    help = "Reconstruit l'index de recherche des messages (tous, ou reçus depuis une date)."

    def add_arguments(self, parser):
        parser.add_argument("--since", type=datetime.date.fromisoformat, help="Messages reçus depuis (AAAA-MM-JJ).")
        parser.add_argument(
            "--queue-only",
            action="store_true",
            help="Mettre les messages en file seulement : l'indexeur périodique les traite.",
        )

    def handle(self, *args, since=None, queue_only=False, **options):
        queued = mark_all_pending(since)
        self.stdout.write(f"{queued} message(s) à réindexer.")
        if queue_only:
            return
        total = 0
        while done := index_pending(max_seconds=60):
            total += done
            self.stdout.write(f"{total} message(s) indexé(s)…")
        self.stdout.write(f"Index de recherche à jour : {total} message(s) indexé(s).")
