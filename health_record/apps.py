from django.apps import AppConfig


class HealthRecordConfig(AppConfig):
    name = "health_record"
    verbose_name = "Dossier du patient"

    def ready(self):
        from health_record import tasks  # noqa: F401 - registered in every process, queued by name
