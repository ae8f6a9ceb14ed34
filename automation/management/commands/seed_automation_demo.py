"""`manage.py seed_automation_demo`: the automation part of the demo (called by `seed_demo`
by name, since the apps below may not import this one): the standard models and one upcoming
convocation for Paul. Idempotent."""

from django.core.management.base import BaseCommand

from automation.demo import seed_demo_automation


class Command(BaseCommand):
    help = "Ajoute à la démonstration les modèles de message standard et une convocation (idempotent)."

    def handle(self, *args, **options):
        self.stdout.write(seed_demo_automation())
