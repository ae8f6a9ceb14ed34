from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Traces"

    def ready(self):
        from audit import signals

        signals.install()
