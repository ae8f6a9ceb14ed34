"""`django.contrib.admin` with the project's site (INSTALLED_APPS names this class). A module of
its own: it is imported while the apps load, before any model may be (Django's documented way of
replacing the default admin site)."""

from django.contrib.admin.apps import AdminConfig


class AuditedAdminConfig(AdminConfig):
    default_site = "audit.admin_site.AuditedAdminSite"
