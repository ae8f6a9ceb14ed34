"""`manage.py import_annuaire [FILE]`: import the national extract "Extraction_Correspondance_MSSante"
(plain or zipped) from FILE, a path or an https:// URL. Without FILE, fetch DIRECTORY_IMPORT_SOURCE
(the same): the command for cron-only installs; Celery beat runs the same through `directory.import_scheduled`.
`--demo` loads the small demo extract of `scripts/run`. See docs/directory.md.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from directory import fetch
from directory.importer import ImportRefused, import_extract, summary_lines

DEMO_FILE = Path(__file__).resolve().parents[2] / "demo" / "Extraction_Correspondance_MSSante_demo.txt"


class Command(BaseCommand):
    help = "Importe l'extraction de l'annuaire national MSSanté (fichier, archive ZIP ou source configurée)."
    # A data job (cron, each night), like the scheduled task that runs the same import: Django's
    # system checks (models, URLs, templates: half a second) are for `check` and the servers.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "file", nargs="?", help="le fichier (ou l'archive ZIP) ou son URL https:// ; sinon DIRECTORY_IMPORT_SOURCE"
        )
        parser.add_argument("--force", action="store_true", help="accepte un fichier qui retire beaucoup d'adresses")
        parser.add_argument("--demo", action="store_true", help="importe le petit extrait de démonstration")

    def handle(self, *args, file=None, force=False, demo=False, **options):
        try:
            if demo:
                run = import_extract(DEMO_FILE, source="démonstration", force=True)
            elif file and "://" in file:  # an https:// URL, downloaded first like the configured source
                run = fetch.import_from_source(file, force=force)
            elif file:
                if not Path(file).is_file():
                    raise CommandError(f"Fichier introuvable : {file}")
                run = import_extract(file, force=force)
            else:
                run = fetch.import_from_source(force=force)
        except ImportRefused as exc:
            raise CommandError(f"Fichier refusé, l'annuaire est inchangé : {exc}") from None
        except fetch.SourceError as exc:
            raise CommandError(str(exc)) from None
        for line in summary_lines(run):
            self.stdout.write(line)
