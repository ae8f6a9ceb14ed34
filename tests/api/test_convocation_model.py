"""A convocation model sent through `POST /api/v1/messages` (issue 10 §1, issue 9 item 3): the
patient gets what the webmail's convocation and a list give them — the appointment written in
French, the invitation the text announces, the reminders — and an appointment that cannot be
read is refused before anything leaves. Through HTTP with a real key."""

import datetime

from django.utils import timezone

from automation.authoring import create_model
from automation.models import Convocation, Reminder
from mailboxes.models import Entry, Message

BODY = (
    "Bonjour {{ civilite }} {{ nom_usage }},\n"
    "vous êtes attendu(e) le {{ date_rdv }} à {{ heure_rdv }}, {{ lieu }}.\n"
    "L'invitation jointe ajoute ce rendez-vous à votre agenda."
)


def convocation_model(box):
    return create_model(
        mailbox=box,
        service="Cardiologie",
        name="Convocation",
        subject="Votre rendez-vous du {{ date_rdv }}",
        body=BODY,
        is_appointment=True,
        reminder_days=[7, 1],
    )


def test_a_convocation_model_sends_the_invitation_and_sets_the_reminders(cast, api):
    model = convocation_model(api.box)
    day = timezone.localdate() + datetime.timedelta(days=30)
    response = api.call.post(
        "/api/v1/messages",
        {
            "to": [cast.paul_box.address],
            "model": model.pk,
            "fields": {"date_rdv": day.strftime("%d/%m/%Y"), "heure_rdv": "9h30", "lieu": "Hall B"},
        },
    )
    assert response.status_code == 201, response.content
    message = Message.objects.get(pk=response.json()["id"])
    # What Paul reads: the date in words, the hour as the webmail writes it, and the invitation.
    assert day.strftime("%d/%m/%Y") not in message.text_body
    assert f" {day.year} à 9 h 30, Hall B." in message.text_body
    files = {a.filename: a.content_type for a in message.attachments.all()}
    assert list(files) == ["invitation.ics"] and files["invitation.ics"].startswith("text/calendar")
    assert Entry.objects.filter(mailbox=cast.paul_box, message=message).exists()
    # The convocation exists as the webmail's does: Paul's next appointment, with its reminders.
    convocation = Convocation.objects.get(patient=cast.paul_patient)
    assert convocation.message_id == message.pk and convocation.place == "Hall B"
    assert timezone.localtime(convocation.starts_at).time() == datetime.time(9, 30)
    due = Reminder.objects.filter(convocation=convocation, status=Reminder.Status.PENDING)
    assert sorted(due.values_list("days_before", flat=True)) == [1, 7]
    # Audited as the webmail's convocation is (ids only), in the call's chain, which verifies.
    from audit.chain import verify
    from audit.models import AuditEvent

    sent = AuditEvent.objects.get(action=AuditEvent.Action.CONVOCATION_SENT)
    assert sent.message_id == message.pk and cast.paul_box.address not in str(sent.detail)
    assert verify().ok


def test_an_appointment_that_cannot_be_read_is_refused_before_anything_leaves(cast, api):
    model = convocation_model(api.box)
    past = (timezone.localdate() - datetime.timedelta(days=2)).isoformat()
    for fields, says in (
        ({"date_rdv": "pas une date", "heure_rdv": "09:30", "lieu": "Hall B"}, "Date illisible"),
        ({"date_rdv": "2031-02-31", "heure_rdv": "09:30", "lieu": "Hall B"}, "Date illisible"),
        ({"date_rdv": "2031-06-14", "heure_rdv": "25:99", "lieu": "Hall B"}, "Heure illisible"),
        ({"date_rdv": past, "heure_rdv": "09:30", "lieu": "Hall B"}, "déjà passé"),
    ):
        response = api.call.post(
            "/api/v1/messages", {"to": [cast.paul_box.address], "model": model.pk, "fields": fields}
        )
        assert response.status_code == 422, (fields, response.content)
        assert response["Content-Type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "validation_error" and says in " ".join(problem["errors"]["fields"])
    assert not Message.objects.filter(subject__startswith="Votre rendez-vous").exists()
    assert not Convocation.objects.exists()


def test_a_convocation_over_the_daily_limit_makes_no_convocation(cast, api, settings):
    """Over the box's daily limit, nothing half-made: no message, no convocation, no reminder."""
    model = convocation_model(api.box)
    settings.AUTOMATION_DAILY_LIMIT = 0
    day = timezone.localdate() + datetime.timedelta(days=30)
    response = api.call.post(
        "/api/v1/messages",
        {
            "to": [cast.paul_box.address],
            "model": model.pk,
            "fields": {"date_rdv": day.isoformat(), "heure_rdv": "09:30", "lieu": "Hall B"},
        },
    )
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "daily_limit_reached"
    assert not Message.objects.exists() and not Convocation.objects.exists() and not Reminder.objects.exists()
