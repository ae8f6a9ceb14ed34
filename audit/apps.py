from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Traces"

    def ready(self):
        from celery.signals import task_postrun, task_prerun
        from django.core.signals import request_finished, request_started

        from audit import events, signals  # noqa: F401 - signals registers the admin's receiver

        # Refusals and security events outlive a caller's rollback (events.record_lasting).
        request_started.connect(events.forget_remembered, dispatch_uid="audit-forget-remembered")
        request_finished.connect(events.write_rolled_back, dispatch_uid="audit-write-rolled-back")
        task_prerun.connect(events.open_task_scope, dispatch_uid="audit-open-task-scope", weak=False)
        task_postrun.connect(events.close_task_scope, dispatch_uid="audit-write-rolled-back-task", weak=False)
