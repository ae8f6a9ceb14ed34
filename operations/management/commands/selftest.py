from django.core.management.base import BaseCommand, CommandError

from operations.selftest import FAIL, run_all

SYMBOLS = {"ok": "OK    ", "warn": "ATTENTION", "fail": "ÉCHEC ", "skipped": "IGNORÉ"}


class Command(BaseCommand):
    help = (
        "Auto-test de mise en service : réglages de production, certificat TLS, protocoles SMTP, liste "
        "blanche, annuaire, relais, aller-retour par l'adresse de test, horloge, chaîne des traces."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-round-trip", action="store_true", help="Sans l'envoi à l'adresse de test.")

    def handle(self, *args, no_round_trip=False, **options):
        results = run_all(round_trip=not no_round_trip)
        for result in results:
            self.stdout.write(f"[{SYMBOLS[result.status]}] {result.label} : {result.found}")
            if result.fix:
                self.stdout.write(f"          → {result.fix}")
        failed = [r for r in results if r.status == FAIL]
        if failed:
            raise CommandError(f"{len(failed)} vérification(s) en échec.", returncode=1)
        self.stdout.write("Auto-test réussi.")
