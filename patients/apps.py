from django.apps import AppConfig
from django.db.models.signals import post_migrate


def create_test_mailbox(sender, using="default", **kwargs):
    """The test address of the patient domain (RULES.md §3) exists in every database, like
    content types: created after each `migrate` (and each test flush)."""
    from patients.policy import ensure_test_mailbox

    ensure_test_mailbox(using=using)


class PatientsConfig(AppConfig):
    name = "patients"
    verbose_name = "Patients (Mon espace santé)"

    def ready(self):
        from patients import tasks  # noqa: F401 - registered in every process, queued by name
        from patients.provisioning import register

        post_migrate.connect(create_test_mailbox, sender=self, dispatch_uid="patients_test_mailbox")
        register()  # the patients and dispensations sections of `manage.py provision`
