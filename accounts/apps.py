from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Comptes"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from accounts import (
            checks,  # noqa: F401 - registers the deployment checks
            signals,  # noqa: F401 - connects the sign-in audit receivers
        )
        from accounts.middleware import start_activity_clock

        user_logged_in.connect(start_activity_clock, dispatch_uid="accounts.start_activity_clock")
