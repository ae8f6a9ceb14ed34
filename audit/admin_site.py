"""The project's admin site: every ModelAdmin registered on it, ours and third-party ones alike
(allauth's, Django's own), logs a deletion of several objects as one LogEntry saved per object,
so that `audit.signals` records each through `post_save` (Django's default writes them with one
`bulk_create`, which sends no signal).

Public mechanisms only: `AdminConfig.default_site` names this site (audit/admin_config.py), so `admin.site` and
`@admin.register` use it; `register` mixes `AuditedDeletions` into the admin class it is given;
`ModelAdmin.log_deletions` and `LogEntryManager.log_actions` are documented (Django 5.1).
"""

from django.contrib import admin


class AuditedDeletions:
    """A ModelAdmin mixin: `log_deletions` (called before the objects are deleted) saves one
    LogEntry per object."""

    def log_deletions(self, request, queryset):
        from django.contrib.admin.models import DELETION, LogEntry

        return [
            LogEntry.objects.log_actions(
                user_id=request.user.pk, queryset=[obj], action_flag=DELETION, single_object=True
            )
            for obj in queryset
        ]


class AuditedAdminSite(admin.AdminSite):
    site_header = "Administration MSSanté"
    site_title = "Administration MSSanté"

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, AuditedDeletions):
            attributes = {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__}
            admin_class = type(admin_class.__name__, (AuditedDeletions, admin_class), attributes)
        super().register(model_or_iterable, admin_class, **options)
