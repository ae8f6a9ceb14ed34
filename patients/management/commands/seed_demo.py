"""`manage.py seed_demo`: the demo setting of the README (idempotent), loaded through `provision`.

The data is `mailboxes/demo/demo.yaml` (operator and patients sections); this command only keeps
the pharmacy dispensation within the past year (so that the patient-to-pharmacy exception of
RULES.md §3 applies in the demo), sends the demo messages and prints the demo logins. It lives in
the patients app because it loads both apps' demo data (mailboxes may not import patients).
"""

import datetime
from pathlib import Path

from django.apps import apps
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from mailboxes import demo
from mailboxes.demo.messages import seed_demo_messages
from mailboxes.provisioning import ProvisioningError, load_file, provision
from patients.models import PharmacyDispensation

DEMO_FILE = Path(demo.__file__).resolve().parent / "demo.yaml"

# Who, login, password, what they see. The passwords are those of demo.yaml.
DEMO_LOGINS = [
    ("Administratrice (superutilisateur)", "admin", "Admin-Mssante-2026", "l'administration /admin/"),
    ("Dr Alice MARTIN, cardiologue", "alice", "Alice-Mssante-2026", "sa BAL nominative et cardiologie@"),
    ("Dr Hugo BERNARD, admissions", "hugo", "Hugo-Mssante-2026", "sa BAL, admissions@ et la BAL applicative"),
    ("Bob LEROY, secrétaire", "bob", "Bob-Mssante-2026", "cardiologie@"),
    ("Claire PETIT, pharmacienne", "claire", "Claire-Mssante-2026", "officine@ (Pharmacie du Marché)"),
    ("Paul LAMBERT, patient", "paul", "Paul-Mssante-2026", "sa messagerie Mon espace santé"),
    ("Léa ROUX, patiente", "lea", "Lea-Mssante-2026", "sa messagerie Mon espace santé"),
    (
        "Marie-Ange SANTONI, patiente (espace clôturé)",
        "marie-ange",
        "Marie-Mssante-2026",
        "sa messagerie, espace clôturé",
    ),
]


def demo_data() -> dict:
    data = load_file(DEMO_FILE)
    today = timezone.localdate()
    for item in data.get("dispensations", []):
        recent = (
            PharmacyDispensation.objects.filter(
                patient__ins=item["patient"],
                pharmacy_mailbox__address=item["pharmacy_mailbox"],
                dispensed_on__gte=today - datetime.timedelta(days=330),
            )
            .order_by("-dispensed_on")
            .first()
        )
        if recent is not None:
            item["dispensed_on"] = recent.dispensed_on
        elif item["dispensed_on"] < today - datetime.timedelta(days=330):
            item["dispensed_on"] = today - datetime.timedelta(days=30)
    return data


class Command(BaseCommand):
    help = "Charge les données de démonstration (idempotent) et affiche les identifiants de démonstration."

    def handle(self, *args, **options):
        try:
            report = provision(demo_data())
        except ProvisioningError as exc:
            for line in exc.errors:
                self.stderr.write(line)
            raise CommandError("Les données de démonstration n'ont pas pu être chargées.") from None
        for line in report.summary_lines():
            self.stdout.write(line)
        self.stdout.write(f"messages de démonstration envoyés : {seed_demo_messages()}")
        if apps.is_installed("directory"):  # by name: mailboxes imports no app above it
            call_command("import_annuaire", "--demo", stdout=self.stdout)
        if apps.is_installed("automation"):  # by name, like the directory: models and a convocation
            call_command("seed_automation_demo", stdout=self.stdout)
        self.stdout.write("")
        self.stdout.write("Comptes de démonstration :")
        widths = [max(len(row[i]) for row in DEMO_LOGINS + [HEADER]) for i in range(4)]
        for row in [HEADER, tuple("-" * w for w in widths), *DEMO_LOGINS]:
            self.stdout.write("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


HEADER = ("Qui", "Identifiant", "Mot de passe", "Ce qu'il voit")
