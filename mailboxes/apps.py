from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Opérateur MSSanté"

    def ready(self):
        from mailboxes import signals  # noqa: F401 - connects the receivers
