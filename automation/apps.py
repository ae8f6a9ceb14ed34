from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "automation"
    verbose_name = "Envois automatisés"

    def ready(self):
        from automation import patient_views, tasks  # noqa: F401 - tasks registered, queued by name
        from patients.panels import inbox_panels

        inbox_panels.connect(patient_views.upcoming_panel, dispatch_uid="automation_upcoming_convocations")
