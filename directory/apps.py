"""The national MSSanté directory: import, search and completion (issue 12)."""

from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "directory"
    verbose_name = "Annuaire"

    def ready(self):
        from directory import signals  # noqa: F401 - connects the receivers
