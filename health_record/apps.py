from django.apps import AppConfig


class HealthRecordConfig(AppConfig):
    name = "health_record"
    verbose_name = "Dossier du patient"
