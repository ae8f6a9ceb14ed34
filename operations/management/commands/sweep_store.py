from django.core.management.base import BaseCommand

from operations.store_sweep import sweep_store


class Command(BaseCommand):
    help = (
        "Met en quarantaine les fichiers stockés (messages, pièces jointes) qu'aucune ligne ne "
        "désigne plus depuis STORE_ORPHAN_HOURS heures, rétablit ceux qui sont de nouveau désignés, "
        "et supprime ceux restés STORE_QUARANTINE_DAYS jours en quarantaine. Chaque jour sur le beat."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Compter sans rien déplacer ni supprimer.")

    def handle(self, *args, dry_run=False, **options):
        report = sweep_store(dry_run=dry_run)
        prefix = "Simulation : " if dry_run else ""
        self.stdout.write(
            f"{prefix}{report.quarantined} fichier(s) mis en quarantaine ({report.quarantined_bytes} octets), "
            f"{report.restored} rétabli(s), {report.deleted} supprimé(s) ({report.deleted_bytes} octets)."
        )
