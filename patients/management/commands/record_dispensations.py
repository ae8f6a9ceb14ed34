"""Import pharmacy dispensations (patients/dispensations.py): `ins;pharmacy_address;YYYY-MM-DD`."""

import csv
import datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from patients.dispensations import record_dispensation


class Command(BaseCommand):
    help = "Enregistre les délivrances d'ordonnances remboursées (CSV : ins;adresse_officine;date)."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, **options):
        done = errors = 0
        try:
            handle = open(options["file"], encoding="utf-8", newline="")
        except OSError as exc:
            raise CommandError(f"Fichier illisible : {exc}") from exc
        with handle:
            for line_number, row in enumerate(csv.reader(handle, delimiter=";"), start=1):
                if not row or row[0].strip().lower() == "ins":
                    continue
                try:
                    ins, address, date = (cell.strip() for cell in row[:3])
                    record_dispensation(
                        ins=ins, pharmacy_address=address, dispensed_on=datetime.date.fromisoformat(date)
                    )
                    done += 1
                except (ValueError, ValidationError) as exc:
                    errors += 1
                    message = exc.messages[0] if isinstance(exc, ValidationError) else "ligne mal formée"
                    self.stderr.write(f"ligne {line_number} : {message}")
        self.stdout.write(f"{done} délivrance(s) enregistrée(s), {errors} erreur(s).")
        if errors:
            raise CommandError("Des lignes n'ont pas été importées.")
