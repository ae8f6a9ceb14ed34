from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "automation"
    verbose_name = "Envois automatisés"

    def ready(self):
        from automation import demo, patient_views, tasks  # noqa: F401 - tasks registered, queued by name
        from mailboxes.demo import demo_seeded
        from patients.panels import inbox_panels

        inbox_panels.connect(patient_views.upcoming_panel, dispatch_uid="automation_upcoming_convocations")
        demo_seeded.connect(demo.seed_demo_automation, dispatch_uid="automation_demo")
