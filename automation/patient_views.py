"""The patient's side of convocations (issue 9 item 3): upcoming appointments on the inbox page
(a section given to `patients.panels.inbox_panels`, so `patients` needs no import of this app)
and "add to my calendar" (the appointment's .ics, same UID and SEQUENCE as the invitations, so
a calendar that already has it updates it rather than adding a copy)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit.events import record
from audit.models import AuditEvent
from automation import access
from automation.models import Convocation

UPCOMING_LIMIT = 10


def upcoming(user):
    return (
        access.convocations_for_patient_user(user)
        .filter(status=Convocation.Status.SCHEDULED, starts_at__gte=timezone.now())
        .select_related("model")
        .order_by("starts_at")[:UPCOMING_LIMIT]
    )


def upcoming_panel(sender, request, patient, **kwargs) -> str | None:
    """Receiver of `patients.panels.inbox_panels`."""
    items = list(upcoming(request.user))
    if not items:
        return None
    return render_to_string("automation/_patient_upcoming.html", {"convocations": items}, request=request)


@login_required
@require_GET
def convocation_ics(request, convocation_id):
    # Imported here: this module loads in every process (apps.ready connects `upcoming_panel`),
    # and icalendar costs ~25 ms of every command's start.
    from automation import calendar

    convocation = access.convocation_for_patient_user(request.user, convocation_id)
    body = calendar.build_ics(convocation, method="PUBLISH")
    record(
        AuditEvent.Action.CONVOCATION_DOWNLOADED,
        actor=request.user,
        obj=convocation,
        mailbox_id=convocation.patient.mailbox_id,
        ip=request.META.get("REMOTE_ADDR"),
    )
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="rendez-vous-{convocation.starts_at:%Y-%m-%d}.ics"'
    return response
