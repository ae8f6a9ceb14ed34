"""Statistics, health, metrics, self-test, the embedded scheduler (issue 14)."""

from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = "Exploitation"

    def ready(self):
        from celery.signals import task_postrun, task_prerun

        from audit.chain import events_committed
        from operations import checks  # noqa: F401 - registers the deployment checks
        from operations.metrics import count_events
        from operations.observability import bind_task_id, unbind_task_id

        events_committed.connect(count_events, dispatch_uid="operations_count_events")
        task_prerun.connect(
            lambda task_id=None, **kwargs: bind_task_id(task_id), weak=False, dispatch_uid="operations_task_id"
        )
        task_postrun.connect(
            lambda task_id=None, **kwargs: unbind_task_id(task_id), weak=False, dispatch_uid="operations_task_id_end"
        )
