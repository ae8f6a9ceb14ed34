import datetime

from django.core.management.base import BaseCommand
from django.utils import timezone

from operations.statistics import aggregate_day


class Command(BaseCommand):
    help = "Calcule les statistiques journalières (par défaut : les 3 derniers jours et aujourd'hui)."

    def add_arguments(self, parser):
        parser.add_argument("--since", type=datetime.date.fromisoformat, help="Premier jour (AAAA-MM-JJ).")
        parser.add_argument("--days", type=int, default=3, help="Nombre de jours avant aujourd'hui.")

    def handle(self, *args, since=None, days=3, **options):
        today = timezone.localdate()
        first = since or today - datetime.timedelta(days=days)
        rows, day = 0, first
        while day <= today:
            rows += aggregate_day(day)
            day += datetime.timedelta(days=1)
        self.stdout.write(f"{(today - first).days + 1} jour(s) calculé(s), {rows} ligne(s).")
