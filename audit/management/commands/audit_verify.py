import datetime

from django.core.management.base import BaseCommand, CommandError

from audit.chain import seal_closed_days, verify


class Command(BaseCommand):
    help = (
        "Vérifie la chaîne d'empreintes des traces (et les scellements journaliers) et nomme le "
        "premier maillon rompu. Code de sortie 1 si la chaîne est rompue."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            type=datetime.date.fromisoformat,
            help="Premier jour vérifié (AAAA-MM-JJ) ; par défaut tout ce qui est conservé.",
        )
        parser.add_argument("--seal", action="store_true", help="Scelle d'abord les jours clos non scellés.")

    def handle(self, *args, since=None, seal=False, **options):
        if seal:
            seal_closed_days()
        report = verify(since)
        summary = f"{report.events} trace(s) dans {report.chains} chaîne(s), {report.seals} scellement(s)"
        if report.ok:
            self.stdout.write(f"Chaîne intègre : {summary}.")
            return
        self.stdout.write(f"Premier maillon rompu : {report.first_break}")
        for other in report.breaks[1:]:
            self.stdout.write(f"Autre rupture : {other}")
        raise CommandError(f"Chaîne rompue ({len(report.breaks)} rupture(s)) ; {summary}.", returncode=1)
