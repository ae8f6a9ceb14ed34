from django.core.management.base import BaseCommand
from django.utils import timezone

from operations.indicators import indicators_csv


class Command(BaseCommand):
    help = "Écrit les indicateurs mensuels de l'opérateur (CSV ; colonnes décrites dans docs/operations.md)."

    def add_arguments(self, parser):
        parser.add_argument("--month", help="Mois AAAA-MM (par défaut : le mois précédent).")

    def handle(self, *args, month=None, **options):
        if not month:
            first = timezone.localdate().replace(day=1)
            month = (first - timezone.timedelta(days=1)).strftime("%Y-%m")
        self.stdout.write(indicators_csv(month), ending="")
