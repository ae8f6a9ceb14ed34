from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Opérateur MSSanté"

    def ready(self):
        # The receivers connect; the tasks register in every process (not only in workers), so
        # the modules that queue them by name (`celery.signature`) need not import them.
        from mailboxes import signals, tasks  # noqa: F401
