"""Retention of unused mailboxes (RULES.md §5) for installs that run cron rather than Celery beat:
warns the owners of boxes soon to be deleted, then deletes those unused and warned in time
(mailboxes/inactivity.py). Run it daily."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from mailboxes import inactivity


class Command(BaseCommand):
    help = (
        "Avertit les titulaires des boîtes inutilisées depuis près de MAILBOX_INACTIVITY_DAYS jours, "
        "puis supprime celles restées inutilisées après l'avertissement."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Affiche ce qui serait fait, sans rien écrire ni envoyer.",
        )

    def handle(self, *args, dry_run=False, **options):
        now = timezone.now()
        if dry_run:
            to_warn = list(inactivity.mailboxes_to_warn(now).order_by("pk").values_list("pk", flat=True))
            to_delete = list(inactivity.mailboxes_to_delete(now).order_by("pk").values_list("pk", flat=True))
            self.stdout.write(f"{len(to_warn)} boîte(s) à avertir : {_ids(to_warn)}")
            self.stdout.write(f"{len(to_delete)} boîte(s) à supprimer : {_ids(to_delete)}")
            self.stdout.write("Simulation : rien n'a été écrit ni envoyé.")
            return
        # Deletion first: a box warned today must never be deleted in the same run.
        deleted = inactivity.delete_inactive_mailboxes(now)
        warned = inactivity.warn_inactive_mailboxes(now)
        self.stdout.write(f"{warned} boîte(s) avertie(s), {deleted} boîte(s) supprimée(s).")


def _ids(ids: list[int]) -> str:
    return ", ".join(f"#{pk}" for pk in ids) or "aucune"
