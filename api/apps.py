"""The REST API for hospital software and the return-box queue (issue 10)."""

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API pour les logiciels"

    def ready(self):
        from api import (
            connections,
            tasks,  # noqa: F401  (registers the tasks)
        )
        from api.hooks import on_events_committed
        from audit.chain import events_committed

        events_committed.connect(on_events_committed, dispatch_uid="api_on_events_committed")
        connections.install()
