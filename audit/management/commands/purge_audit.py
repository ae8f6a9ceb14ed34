from django.core.management.base import BaseCommand

from audit.retention import purge_expired_events


class Command(BaseCommand):
    help = (
        "Scelle les jours clos puis supprime les journées de traces plus anciennes que "
        "AUDIT_RETENTION_DAYS (6 mois par défaut) ; la purge est elle-même tracée."
    )

    def handle(self, *args, **options):
        deleted = purge_expired_events()
        self.stdout.write(f"{deleted} trace(s) supprimée(s).")
