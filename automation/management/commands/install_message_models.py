"""`manage.py install_message_models BOX SERVICE`: the standard message models (pre-admission,
convocation, welcome, preparation, document request, satisfaction survey) for a box and a
service; those already there (by name) are left as they are."""

from django.core.management.base import BaseCommand, CommandError

from automation.standard_models import install_standard_models
from mailboxes.models import Mailbox


class Command(BaseCommand):
    help = "Installe les modèles de message standard pour une BAL et un service (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("mailbox", help="adresse de la BAL d'envoi (organisationnelle ou applicative)")
        parser.add_argument("service", help="nom du service, par exemple « Admissions »")

    def handle(self, *args, mailbox, service, **options):
        box = Mailbox.objects.filter(address=mailbox.strip().lower(), is_active=True).exclude(kind="PAT").first()
        if box is None:
            raise CommandError(f"Aucune BAL active de professionnel à l'adresse « {mailbox} ».")
        created = install_standard_models(box, service.strip())
        self.stdout.write(f"{len(created)} modèle(s) créé(s) pour {box.address} — {service.strip()}.")
