import datetime

from django.core.management.base import BaseCommand, CommandError

from operations.store_check import verify_store

LABELS = {
    "message": "message",
    "attachment": "pièce jointe",
    "document": "document du dossier",
    "model attachment": "pièce jointe de modèle",
}


class Command(BaseCommand):
    help = (
        "Vérifie que chaque message, pièce jointe (de message ou de modèle) et document stocké est présent et correspond à son "
        "empreinte SHA-256 ; nomme les manquants et les corrompus. Code de sortie 1 s'il en manque."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", type=datetime.date.fromisoformat, help="Messages reçus depuis (AAAA-MM-JJ).")

    def handle(self, *args, since=None, **options):
        report = verify_store(since)
        for kind, pk, name in report.missing:
            self.stdout.write(f"MANQUANT : {LABELS[kind]} n° {pk} ({name})")
        for kind, pk, name in report.corrupt:
            self.stdout.write(
                f"CORROMPU : {LABELS[kind]} n° {pk} ({name}) : le contenu ne correspond plus à son empreinte"
            )
        summary = f"{report.checked} objet(s) vérifié(s), {report.files} fichier(s) lu(s)"
        if not report.ok:
            raise CommandError(
                f"{len(report.missing)} manquant(s), {len(report.corrupt)} corrompu(s) ; {summary}.", returncode=1
            )
        self.stdout.write(f"Stockage intègre : {summary}.")
