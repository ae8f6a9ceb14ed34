"""`manage.py provision FILE`: load structures, domains, people and mailboxes (mailboxes/provisioning.py)."""

from django.core.management.base import BaseCommand, CommandError

from mailboxes.provisioning import ProvisioningError, provision_file


class Command(BaseCommand):
    help = (
        "Charge structures, domaines, professionnels, BAL, membres, patients et délivrances depuis un "
        "fichier YAML ou JSON. Tout est vérifié avant d'écrire ; en cas d'erreur, rien n'est écrit."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="fichier YAML (.yaml, .yml) ou JSON (.json)")
        parser.add_argument("--dry-run", action="store_true", help="vérifier seulement, sans rien écrire")

    def handle(self, *args, file, dry_run, **options):
        try:
            report = provision_file(file, dry_run=dry_run)
        except ProvisioningError as exc:
            for line in exc.errors:
                self.stderr.write(line)
            raise CommandError(f"{len(exc.errors)} erreur(s) : rien n'a été écrit.") from None
        for line in report.summary_lines():
            self.stdout.write(line)
        if dry_run:
            self.stdout.write(self.style.WARNING("Vérification seule (--dry-run) : rien n'a été écrit."))
        else:
            self.stdout.write(self.style.SUCCESS("Provisionnement terminé."))
