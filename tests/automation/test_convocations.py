"""Convocations (issue 9 item 3): the .ics invitation parsed back with icalendar (UID, SEQUENCE,
METHOD, Europe/Paris VTIMEZONE), reschedule and cancel, reminders at D-7 and D-1 in local time,
never in the past, never twice, skipped once cancelled — across a change of summer time."""

import datetime
from email import policy
from email.parser import BytesParser
from zoneinfo import ZoneInfo

import icalendar
import pytest
import time_machine
from hypothesis import example, given
from hypothesis import strategies as st

from audit.models import AuditEvent
from automation import convocations
from automation.models import Convocation, MessageModel, Reminder
from mailboxes.delivery import DeliveryRefused
from mailboxes.models import Entry, Message
from mailboxes.store import read_raw
from tests.automation.conftest import in_days
from tests.factories import make_patient

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")
VALUES = {"lieu": "Bâtiment B, 2e étage", "motif": "échographie cardiaque", "nom_professionnel": "MARTIN"}


def invitation(message: Message) -> icalendar.Calendar:
    parsed = BytesParser(policy=policy.default).parsebytes(read_raw(message))
    parts = [p for p in parsed.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    return icalendar.Calendar.from_ical(parts[0].get_content())


def event_of(calendar: icalendar.Calendar) -> icalendar.Event:
    (event,) = calendar.walk("VEVENT")
    return event


def convoke(service, patient, starts_at, **kwargs):
    return convocations.create_convocation(
        model=service.models[MessageModel.Kind.CONVOCATION],
        patient=patient,
        starts_at=starts_at,
        user=service.cast.bob,
        values={**VALUES, **kwargs.pop("values", {})},
        **kwargs,
    )


def test_convocation_sends_an_invitation_phones_import(service, cast):
    starts = in_days(20, 14, 30)
    convocation = convoke(service, cast.paul_patient, starts)
    message = convocation.message
    entry = Entry.objects.get(mailbox=cast.paul_box, message=message)
    assert "14 h 30" in message.subject and "Bâtiment B" in message.text_body
    assert [r["address"] for r in message.to] == [cast.paul_patient.address]
    calendar = invitation(message)
    assert calendar["METHOD"] == "REQUEST"
    (tz,) = calendar.walk("VTIMEZONE")
    assert tz["TZID"] == "Europe/Paris" and {c.name for c in tz.subcomponents} == {"STANDARD", "DAYLIGHT"}
    event = event_of(calendar)
    assert str(event["UID"]) == f"{convocation.uid}@ch-troispics.mssante.fr"
    assert int(event["SEQUENCE"]) == 0
    start = event.decoded("DTSTART")
    assert start == starts and str(start.tzinfo) == "Europe/Paris"
    assert event["DTSTART"].params["TZID"] == "Europe/Paris"
    assert event.decoded("DTEND") - start == datetime.timedelta(minutes=30)
    assert "Bâtiment B" in str(event["LOCATION"])
    assert entry.folder.role == "inbox"
    assert AuditEvent.objects.filter(action="convocation.sent", object_id=str(convocation.pk)).exists()
    # Reminders D-7 and D-1 at the reminder hour, local time.
    due = {r.days_before: r.due_at.astimezone(PARIS) for r in convocation.reminders.all()}
    assert set(due) == {7, 1}
    assert due[1].date() == starts.date() - datetime.timedelta(days=1) and due[1].hour == 9


def test_reschedule_keeps_the_uid_and_raises_the_sequence_then_cancel(service, cast):
    convocation = convoke(service, cast.paul_patient, in_days(20))
    uid = str(event_of(invitation(convocation.message))["UID"])
    later = in_days(25, 8, 15)
    convocations.reschedule(convocation, later, cast.bob)
    update = convocation.message
    event = event_of(invitation(update))
    assert str(event["UID"]) == uid and int(event["SEQUENCE"]) == 1 and event.decoded("DTSTART") == later
    assert "déplacé" in update.subject and "8 h 15" in update.text_body
    pending = Reminder.objects.filter(convocation=convocation, status="pending")
    assert {r.sequence for r in pending} == {1}
    assert Reminder.objects.filter(convocation=convocation, sequence=0, status="skipped").count() == 2

    convocations.cancel(convocation, cast.bob)
    cancel_message = Message.objects.filter(subject__startswith="Rendez-vous annulé").get()
    calendar = invitation(cancel_message)
    event = event_of(calendar)
    assert calendar["METHOD"] == "CANCEL" and str(event["UID"]) == uid
    assert int(event["SEQUENCE"]) == 2 and event["STATUS"] == "CANCELLED"
    assert not Reminder.objects.filter(convocation=convocation, status="pending").exists()
    actions = set(AuditEvent.objects.filter(object_id=str(convocation.pk)).values_list("action", flat=True))
    assert {"convocation.sent", "convocation.rescheduled", "convocation.cancelled"} <= actions


def test_missing_field_and_closed_space_leave_nothing_behind(service, cast):
    # The pre-admission text needs the professional's title and name: reported by name.
    with pytest.raises(ValueError, match=r"\{\{ titre_professionnel \}\}, \{\{ nom_professionnel \}\}"):
        convocations.create_convocation(
            model=service.models[MessageModel.Kind.PRE_ADMISSION],
            patient=cast.paul_patient,
            starts_at=in_days(10),
            user=cast.bob,
            values={"motif": "bilan"},
        )
    closed = make_patient("Marc", "Ferrand", space_state="closed")
    with pytest.raises(DeliveryRefused):
        convoke(service, closed, in_days(10))
    assert not Convocation.objects.exists() and not Message.objects.exists()
    # The refusal's audit event stays (issue 15 item 15): the convocation is undone, not rolled back.
    assert AuditEvent.objects.filter(action="message.refused", outcome="space_closed").exists()


def test_reminder_in_the_past_is_never_sent(service, cast):
    convocation = convoke(service, cast.paul_patient, in_days(3))
    reminders = {r.days_before: r for r in convocation.reminders.all()}
    assert reminders[7].status == "skipped" and reminders[7].reason == "past"
    assert reminders[1].status == "pending"


def sent_reminders(patient) -> list[Message]:
    return list(Message.objects.filter(entries__mailbox=patient.mailbox, subject__startswith="Rappel").order_by("pk"))


def test_reminders_across_the_spring_change_fire_once_at_local_nine(service, cast):
    """Summer time starts on Sunday 29 March 2026 at 02:00. An appointment on Monday 30 March
    at 10:00: D-7 is Monday 23 March 09:00 CET (08:00 UTC), D-1 Sunday 29 March 09:00 CEST
    (07:00 UTC)."""
    utc = datetime.UTC
    with time_machine.travel(datetime.datetime(2026, 3, 1, 12, 0, tzinfo=utc), tick=False) as clock:
        convocation = convoke(service, cast.paul_patient, datetime.datetime(2026, 3, 30, 10, 0, tzinfo=PARIS))
        due = {r.days_before: r.due_at for r in convocation.reminders.all()}
        assert due[7] == datetime.datetime(2026, 3, 23, 8, 0, tzinfo=utc)
        assert due[1] == datetime.datetime(2026, 3, 29, 7, 0, tzinfo=utc)

        for moment, expected in [
            ((2026, 3, 23, 7, 59), 0),
            ((2026, 3, 23, 8, 0), 1),
            ((2026, 3, 23, 8, 1), 1),  # the next beat run: never twice
            ((2026, 3, 29, 6, 59), 1),  # 08:59 CEST: not yet
            ((2026, 3, 29, 7, 0), 2),  # 09:00 CEST
            ((2026, 3, 29, 8, 0), 2),  # the naive "09:00 CET" moment: nothing more
            ((2026, 3, 30, 7, 0), 2),
        ]:
            clock.move_to(datetime.datetime(*moment, tzinfo=utc))
            convocations.send_due_reminders()
            assert len(sent_reminders(cast.paul_patient)) == expected, moment
        first, second = sent_reminders(cast.paul_patient)
        assert "dans 7 jours" in first.text_body and "de demain" in second.text_body
        assert second.created_at == datetime.datetime(2026, 3, 29, 7, 0, tzinfo=utc)


def test_reminders_across_the_autumn_change(service, cast):
    """Winter time comes back on Sunday 25 October 2026 at 03:00: D-1 of an appointment on
    Monday 26 October is 09:00 CET, 08:00 UTC; D-7 (19 October) is 09:00 CEST, 07:00 UTC."""
    utc = datetime.UTC
    with time_machine.travel(datetime.datetime(2026, 10, 1, tzinfo=utc), tick=False) as clock:
        convocation = convoke(service, cast.paul_patient, datetime.datetime(2026, 10, 26, 9, 30, tzinfo=PARIS))
        due = {r.days_before: r.due_at for r in convocation.reminders.all()}
        assert due[7] == datetime.datetime(2026, 10, 19, 7, 0, tzinfo=utc)
        assert due[1] == datetime.datetime(2026, 10, 25, 8, 0, tzinfo=utc)
        clock.move_to(datetime.datetime(2026, 10, 19, 6, 59, tzinfo=utc))
        convocations.send_due_reminders()
        assert sent_reminders(cast.paul_patient) == []
        clock.move_to(datetime.datetime(2026, 10, 19, 7, 0, tzinfo=utc))  # 09:00 CEST
        convocations.send_due_reminders()
        clock.move_to(datetime.datetime(2026, 10, 25, 7, 30, tzinfo=utc))  # 08:30 CET: D-1 not yet
        convocations.send_due_reminders()
        assert len(sent_reminders(cast.paul_patient)) == 1  # D-7 (19 October 07:00 UTC), once
        clock.move_to(datetime.datetime(2026, 10, 25, 8, 0, tzinfo=utc))  # 09:00 CET
        convocations.send_due_reminders()
        convocations.send_due_reminders()
        assert len(sent_reminders(cast.paul_patient)) == 2
        assert set(Reminder.objects.values_list("status", flat=True)) == {"sent"}


def test_cancelled_convocation_sends_no_reminder(service, cast):
    with time_machine.travel(datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC), tick=False) as clock:
        convocation = convoke(service, cast.paul_patient, datetime.datetime(2026, 5, 20, 10, 0, tzinfo=PARIS))
        convocations.cancel(convocation, cast.bob)
        clock.move_to(datetime.datetime(2026, 5, 19, 12, 0, tzinfo=datetime.UTC))
        convocations.send_due_reminders()
    assert sent_reminders(cast.paul_patient) == []
    assert set(Reminder.objects.values_list("status", flat=True)) == {"skipped"}


@pytest.mark.parametrize(
    "summary",
    [
        "Rendez-vous cardiologie — CH des Trois Pics",
        # Long and accented: folded inside two-byte characters and escapes (`\,` `\;`).
        "Consultation pré-anesthésique, service de chirurgie orthopédique; bâtiment É, 3ᵉ étage "
        "— Centre hospitalier intercommunal des Trois Pics, site de l'Hôtel-Dieu" * 2,
        "x" * 66,  # SUMMARY:+66 = 74 octets: not folded
        "x" * 67,  # 75 octets: folded
        "é" * 33 + "x",  # 75 octets in 42 characters
    ],
)
def test_the_calendar_bytes_are_icalendars_own(summary):
    """`automation.calendar.serialised` skips icalendar's fold for short lines only: the bytes
    are `to_ical()`'s, and they parse back."""
    from automation.calendar import serialised

    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//MSSante//Convocations//FR")
    calendar.add("version", "2.0")
    event = icalendar.Event()
    event.add("uid", "c0ffee@ch-troispics.mssante.fr")
    event.add("dtstart", datetime.datetime(2026, 12, 3, 14, 30, tzinfo=PARIS))
    event.add("summary", summary)
    event.add("location", summary[::-1])
    attendee = icalendar.vCalAddress("mailto:123456789012345@patient.mssante.fr")
    attendee.params["cn"] = icalendar.vText("Éloïse D'Alembert-Müller, née Ça")
    event.add("attendee", attendee)
    calendar.add_component(event)
    assert serialised(calendar) == calendar.to_ical()
    assert str(icalendar.Calendar.from_ical(serialised(calendar)).walk("VEVENT")[0]["SUMMARY"]) == summary


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=400))
# An escape that would end a piece: "DESCRIPTION:" and 61 characters, then `\` at octet 74.
@example("x" * 61 + "\\n" + "y" * 80)
@example("é" * 30 + "x" + "^" + "ü" * 60)  # `^` at octet 74 after two-byte characters
@example("x" * 61 + "\\" + "y" * 72 + "^" + "z" * 80)  # in the first and the second piece
def test_folding_is_icalendars_own(text):
    """`automation.calendar.fold` gives the bytes of icalendar's own `Contentline.to_ical()`."""
    from icalendar.parser import Contentline

    from automation.calendar import fold

    line = "DESCRIPTION:" + text
    assert fold(line).encode("utf-8") == Contentline(line).to_ical()
