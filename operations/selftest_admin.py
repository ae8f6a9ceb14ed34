"""The self-test page in the admin (Exploitation → Auto-test de mise en service): runs the same
checks as `manage.py selftest` when an administrator asks (POST), and shows what to fix."""

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path

from audit.events import record
from audit.models import AuditEvent
from mssante.admin_helpers import ReadOnlyAdminMixin
from operations import selftest
from operations.models import Heartbeat


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "at"]

    def get_urls(self):
        view = self.admin_site.admin_view(self.selftest_view)
        return [path("autotest/", view, name="operations_selftest"), *super().get_urls()]

    def selftest_view(self, request):
        results = None
        if request.method == "POST":
            results = selftest.run_all(actor=request.user, round_trip=bool(request.POST.get("round_trip")))
            failed = sum(r.status == selftest.FAIL for r in results)
            record(
                AuditEvent.Action.ADMIN_CHANGE,
                actor=request.user,
                object_type="selftest",
                outcome="failed" if failed else "ok",
                detail={"failed": [r.name for r in results if r.status == selftest.FAIL]},
                request=request,
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Auto-test de mise en service",
            "results": results,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/operations/selftest.html", context)
