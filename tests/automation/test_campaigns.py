"""Campaigns from a CSV list (issue 9 items 4-6), through the real path with tasks in process:
a 200-line list with 10 bad lines (each named by its line number, nothing sent before the
start), Windows-1252 and UTF-8, `;` and `,`, the mapping remembered, one message per patient
and never twice, pause and cancel, the report (sent, returned, read, failed, answered), the
daily limit."""

import csv
import io

import pytest
from django.db.models import F

from audit.models import AuditEvent
from automation import campaign_report, campaign_sending, campaigns, csvfile, fields
from automation.models import Campaign, CampaignLine, Convocation, MessageModel, Reminder
from automation.sending import DailyLimitReached
from mailboxes.compose import send_from_mailbox
from mailboxes.delivery import planning
from mailboxes.models import Entry, Mailbox, Message
from mailboxes.patient_domain import Decision
from patients.models import Patient, PendingReturn
from tests.automation.conftest import in_days, patients
from tests.factories import make_ins, make_patient

pytestmark = pytest.mark.django_db
HEADERS = ["Identifiant national", "Nom", "Date prévue", "Créneau", "Salle"]
MAPPING = {"ins": "Identifiant national", "date_rdv": "Date prévue", "heure_rdv": "Créneau", "lieu": "Salle"}


def to_csv(rows, *, delimiter=";", encoding="cp1252", headers=HEADERS) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def row(patient_or_ins, date=None, time="09:30", room="Salle Bréguet"):
    ins = patient_or_ins if isinstance(patient_or_ins, str) else patient_or_ins.ins
    return [ins, "X", in_days(12).strftime("%d/%m/%Y") if date is None else date, time, room]


def run_to_the_end(campaign):
    for _ in range(50):
        if not campaign_sending.process_batch(campaign.pk):
            break
    campaign.refresh_from_db()


@pytest.fixture
def two_hundred_lines(service):
    people = patients(190)
    closed = [make_patient(f"Clos{i}", "Ferme", space_state="closed") for i in range(2)]
    undated = patients(2, prefix="Sansdate")
    rows = [row(p) for p in people]
    bad = {
        # line number in the file (heading = 1) → the row
        5: row(people[3].ins[:-2] + f"{(int(people[3].ins[-2:]) + 1) % 97:02d}"),  # wrong INS key
        17: row(make_ins(sex="1", year=44, month=1, seq=990001)),  # valid key, unknown patient
        30: row(closed[0]),
        44: row(closed[1]),
        61: row(undated[0], date=""),  # missing date
        75: row(undated[1], time="midi"),  # unreadable time
        88: row(people[20]),  # duplicate of people[20]'s own line
        120: row(""),  # no INS at all
        150: row(people[30].ins[:5]),  # truncated INS
        190: row(make_ins(sex="2", year=61, month=7, seq=990002)),  # unknown patient
    }
    for number in sorted(bad):
        rows.insert(number - 2, bad[number])
    assert len(rows) == 200
    return to_csv(rows), bad, people


def test_two_hundred_lines_with_ten_bad_ones(service, two_hundred_lines):
    data, bad, people = two_hundred_lines
    model = service.models[MessageModel.Kind.CONVOCATION]
    campaign = campaigns.create_campaign(model, filename="liste.csv", data=data, user=service.cast.bob)
    assert campaign.encoding == "windows-1252" and campaign.delimiter == ";"
    assert campaigns.mapping_errors(campaign, campaign.mapping)  # these headings are not guessed
    report = campaigns.apply_mapping(campaign, MAPPING, service.cast.bob)
    assert report.total == 200 and report.valid == 190
    assert {p.number for p in report.problems} == set(bad)
    messages = {p.number: " ".join(p.messages) for p in report.problems}
    assert "clé" in messages[5] and "Aucun patient" in messages[17] and "Aucun patient" in messages[190]
    assert "clôturé" in messages[30] and "clôturé" in messages[44]
    assert messages[61] == "La date du rendez-vous manque."
    assert messages[75] == "Heure illisible « midi » : écrivez-la hh:mm."
    assert messages[88].startswith("Doublon : ce patient figure déjà ligne ") and messages[88].endswith(".")
    assert messages[120] == "Le matricule INS manque sur cette ligne."
    assert not Message.objects.exists()  # nothing leaves before the start

    assert campaigns.start(campaign, service.cast.bob) == 190
    run_to_the_end(campaign)
    assert campaign.status == Campaign.Status.DONE
    progress = campaigns.progress(campaign)
    assert (progress.sent, progress.invalid, progress.pending, progress.percent) == (190, 10, 0, 100)
    # One message per patient, to that patient alone, each with its invitation; never twice.
    for person in people:
        entries = Entry.objects.filter(mailbox=person.mailbox)
        assert entries.count() == 1
        message = entries.get().message
        assert [r["address"] for r in message.to] == [person.address]
        assert message.attachments.filter(filename="invitation.ics").exists()
    assert Convocation.objects.count() == 190 and Reminder.objects.filter(status="pending").count() == 380
    assert AuditEvent.objects.filter(action="campaign.line_sent").count() == 190
    assert campaign_sending.process_batch(campaign.pk) is False
    assert Message.objects.filter(sender_mailbox=service.app).count() == 190

    # The report: every line, with its verdict.
    parsed = list(csv.reader(io.StringIO(campaign_report.report_csv(campaign).decode("utf-8-sig")), delimiter=";"))
    assert parsed[0] == campaign_report.HEADERS and len(parsed) == 201
    by_line = {int(r[0]): r for r in parsed[1:]}
    assert by_line[5][4] == "ligne refusée" and by_line[2][4] == "envoyé"


def test_a_line_dated_in_the_past_is_refused_with_the_moment_named(service):
    """The convocation's one rule (`convocations.check_upcoming`), as the form and the API say it."""
    people = patients(2, prefix="Passe")
    past = in_days(-3).strftime("%d/%m/%Y")
    data = to_csv([row(people[0]), row(people[1], date=past)])
    model = service.models[MessageModel.Kind.CONVOCATION]
    campaign = campaigns.create_campaign(model, filename="liste.csv", data=data, user=service.cast.bob)
    report = campaigns.apply_mapping(campaign, MAPPING, service.cast.bob)
    assert (report.total, report.valid) == (2, 1)
    [problem] = report.problems
    assert problem.number == 3
    assert " ".join(problem.messages) == (
        f"Le rendez-vous du {fields.appointment_values(in_days(-3, 9, 30))['date_rdv']} à 9 h 30 est déjà passé : "
        "choisissez une date et une heure à venir."
    )
    assert not Message.objects.exists()


def test_mapping_is_remembered_for_the_next_list(service):
    people = patients(3)
    model = service.models[MessageModel.Kind.CONVOCATION]
    first = campaigns.create_campaign(model, filename="a.csv", data=to_csv([row(people[0])]), user=service.cast.bob)
    campaigns.apply_mapping(first, MAPPING, service.cast.bob)
    data = to_csv([row(p) for p in people[1:]], delimiter=",", encoding="utf-8")
    second = campaigns.create_campaign(model, filename="b.csv", data=data, user=service.cast.bob)
    assert second.encoding == "utf-8" and second.delimiter == ","
    assert second.mapping == MAPPING
    assert campaigns.validate(second).valid == 2


def test_synonym_headings_are_guessed(service):
    people = patients(1)
    data = to_csv([[people[0].ins, "12/12/2099", "8h"]], headers=["INS", "Date", "Heure"])
    campaign = campaigns.create_campaign(
        service.models[MessageModel.Kind.CONVOCATION], filename="c.csv", data=data, user=service.cast.bob
    )
    assert campaign.mapping == {"ins": "INS", "date_rdv": "Date", "heure_rdv": "Heure"}


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "vide"),
        (b"INS;Date\n", "aucune ligne"),
        (b"\x81\x8d\x8f;x\n1;2\n", "UTF-8"),
        (b"INS;INS\n1;2\n", "même titre"),
    ],
)
def test_unreadable_files_are_refused_with_a_reason(service, data, message):
    with pytest.raises(csvfile.CsvError, match=message):
        campaigns.create_campaign(
            service.models[MessageModel.Kind.WELCOME], filename="x.csv", data=data, user=service.cast.bob
        )
    assert not Campaign.objects.exists()


def test_pause_resume_cancel(service, settings):
    settings.AUTOMATION_CAMPAIGN_CHUNK = 2
    people = patients(6)
    model = service.models[MessageModel.Kind.WELCOME]
    data = to_csv([[p.ins] for p in people], headers=["INS"])
    campaign = campaigns.create_campaign(model, filename="w.csv", data=data, user=service.cast.bob)
    campaigns.validate(campaign)
    campaigns.start(campaign, service.cast.bob)
    campaign_sending.process_batch(campaign.pk, max_lines=2)
    assert campaigns.pause(campaign, service.cast.bob)
    assert campaign_sending.process_batch(campaign.pk) is False
    assert campaigns.progress(campaign).sent == 2
    assert campaigns.resume(campaign, service.cast.bob)
    campaign_sending.process_batch(campaign.pk, max_lines=2)
    assert campaigns.cancel(campaign, service.cast.bob) == 2
    run_to_the_end(campaign)
    progress = campaigns.progress(campaign)
    assert (progress.sent, progress.cancelled, campaign.status) == (4, 2, Campaign.Status.CANCELLED)
    actions = list(
        AuditEvent.objects.filter(object_type="campaign", object_id=str(campaign.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "campaign.created",
        "campaign.validated",
        "campaign.started",
        "campaign.paused",
        "campaign.resumed",
        "campaign.cancelled",
    ]


def test_report_counts_read_returned_and_answers_in_the_paired_box(service):
    people = patients(3)
    model = service.models[MessageModel.Kind.WELCOME]
    data = to_csv([[p.ins] for p in people], headers=["INS"])
    campaign = campaigns.create_campaign(model, filename="w.csv", data=data, user=service.cast.bob)
    campaigns.validate(campaign)
    # Between the check and the send, one patient closes their space: an automatic return.
    Patient.objects.filter(pk=people[2].pk).update(space_state="closed")
    campaigns.start(campaign, service.cast.bob)
    run_to_the_end(campaign)
    line = {ln.patient_id: ln for ln in campaign.lines.all()}
    assert line[people[2].pk].status == CampaignLine.Status.RETURNED
    # The sending box gets its automatic return, as for any message to a closed space.
    assert list(PendingReturn.objects.values_list("code", "sender", "recipient")) == [
        ("space_closed", service.app.address, people[2].address)
    ]

    first = Entry.objects.get(mailbox=people[0].mailbox)
    Entry.objects.filter(pk=first.pk).update(seen=True)
    # The patient's space answers an applicative box's message to its paired organisational box
    # (patients.inbox: the reply target), as the patient's reply page does.
    reply = send_from_mailbox(
        people[1].mailbox,
        people[1].user,
        to=[service.admissions.address],
        subject="RE : Bienvenue",
        text="Merci",
        in_reply_to=Entry.objects.get(mailbox=people[1].mailbox).message,
        source="patient",
    )
    assert [b.pk for b in reply.delivered] == [service.admissions.pk]
    summary = campaign_report.summary(campaign)
    assert (summary.sent, summary.returned, summary.failed, summary.read, summary.answered) == (2, 1, 0, 1, 1)
    assert [ln.patient_id for ln in campaign_report.answered_lines(campaign)] == [people[1].pk]


def test_daily_limit_refuses_a_list_too_long_and_pauses_at_the_limit(service, settings):
    people = patients(4)
    model = service.models[MessageModel.Kind.WELCOME]
    data = to_csv([[p.ins] for p in people], headers=["INS"])
    campaign = campaigns.create_campaign(model, filename="w.csv", data=data, user=service.cast.bob)
    campaigns.validate(campaign)
    settings.AUTOMATION_DAILY_LIMIT = 3
    with pytest.raises(DailyLimitReached, match="3 messages aujourd'hui"):
        campaigns.start(campaign, service.cast.bob)
    settings.AUTOMATION_DAILY_LIMIT = 4
    campaigns.start(campaign, service.cast.bob)
    send_from_mailbox(service.app, service.cast.bob, to=[service.cast.charlie_box.address], subject="x", text="y")
    run_to_the_end(campaign)
    assert campaign.status == Campaign.Status.PAUSED and campaign.pause_reason == "daily_limit"
    assert campaigns.progress(campaign).sent == 3


def test_a_campaign_message_reads_back_with_the_email_package(service):
    """A campaign's message is written without the `email` package's header registry
    (`mailboxes.compose.write_plain_message`): read back with that package it has the headers,
    the text and the `.ics` invitation of the convocation."""
    import hashlib
    from email import policy
    from email.parser import BytesParser

    import icalendar

    from mailboxes.store import read_raw

    person = make_patient("Helene", "Dupre", sex="2")
    model = service.models[MessageModel.Kind.CONVOCATION]
    data = to_csv([row(person, time="14:30", room="Bâtiment B, 2e étage")])
    campaign = campaigns.create_campaign(model, filename="liste.csv", data=data, user=service.cast.bob)
    campaigns.apply_mapping(campaign, MAPPING, service.cast.bob)
    campaigns.start(campaign, service.cast.bob)
    run_to_the_end(campaign)
    stored = Entry.objects.get(mailbox=person.mailbox).message
    raw = read_raw(stored)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert not message.defects and not any(part.defects for part in message.walk())
    (author,) = message["From"].addresses
    assert (author.addr_spec, author.display_name) == (service.app.address, service.app.display_name)
    assert [a.addr_spec for a in message["To"].addresses] == [person.address]
    (reply_to,) = message["Reply-To"].addresses
    assert (reply_to.addr_spec, reply_to.display_name) == (service.admissions.address, service.admissions.display_name)
    assert str(message["Subject"]) == stored.subject and "14 h 30" in stored.subject
    assert message["Message-ID"] == stored.message_id and message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/mixed"
    text = message.get_body(("plain",)).get_content()
    assert text.replace("\r\n", "\n").strip() == stored.text_body.replace("\r\n", "\n").strip()
    assert "Mme DUPRE" in text and "à 14 h 30" in text
    (invitation,) = list(message.iter_attachments())
    assert invitation.get_content_type() == "text/calendar" and invitation.get_param("method") == "REQUEST"
    assert invitation.get_filename() == "invitation.ics"
    convocation = Convocation.objects.get(patient=person)
    calendar = icalendar.Calendar.from_ical(invitation.get_content())
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == f"{convocation.uid}@ch-troispics.mssante.fr"
    assert event.decoded("DTSTART") == convocation.starts_at and "Bâtiment B" in str(event["LOCATION"])
    stored_file = stored.attachments.get(filename="invitation.ics")
    assert hashlib.sha256(invitation.get_payload(decode=True)).hexdigest() == stored_file.sha256


def started_welcome_campaign(service, people) -> Campaign:
    """A welcome list of `people`, checked and started by the secretary."""
    model = service.models[MessageModel.Kind.WELCOME]
    campaign = campaigns.create_campaign(
        model, filename="w.csv", data=to_csv([[p.ins] for p in people], headers=["INS"]), user=service.cast.bob
    )
    campaigns.validate(campaign)
    campaigns.start(campaign, service.cast.bob)
    return campaign


def test_a_line_that_breaks_its_chunk_fails_alone_and_the_others_go_once(service, monkeypatch):
    """A line whose delivery fails in an unexpected way after writing (a bug, a database error)
    rolls its chunk back; the chunk is sent again line by line, so that line fails alone, none
    of its rows stay, and every other patient gets exactly one message."""
    people = patients(5)
    campaign = started_welcome_campaign(service, people)
    real_deliver = campaign_sending.sending.deliver
    attempts = []
    messages_before = Message.objects.count()

    def deliver_then_break_for_the_third(sender, actor, patient, *args, **kwargs):
        outcome = real_deliver(sender, actor, patient, *args, **kwargs)  # its rows are written
        if patient.pk == people[2].pk:
            attempts.append(outcome.primary.message.pk)
            raise RuntimeError("after the write")
        return outcome

    monkeypatch.setattr(campaign_sending.sending, "deliver", deliver_then_break_for_the_third)
    run_to_the_end(campaign)

    statuses = {ln.patient_id: (ln.status, ln.reason) for ln in campaign.lines.all()}
    assert statuses.pop(people[2].pk) == (CampaignLine.Status.FAILED, "error")
    assert set(statuses.values()) == {(CampaignLine.Status.SENT, "")}
    assert len(attempts) == 2  # the whole chunk once, then that line in its savepoint
    assert Message.objects.count() == messages_before + 4  # nothing of the broken line's two attempts
    assert not Entry.objects.filter(mailbox=people[2].mailbox).exists()
    for person in people[:2] + people[3:]:
        assert Entry.objects.filter(mailbox=person.mailbox).count() == 1
    assert campaign.status == Campaign.Status.DONE


def test_a_box_that_fills_up_under_the_fast_path_is_refused_in_the_careful_pass(service, monkeypatch, caplog):
    """The fast path writes a message without a savepoint of its own: a recipient box found full
    only when the rows are written (it filled up after the plan) rolls the chunk back, and the
    careful pass refuses that patient alone, as over quota, while the others get their message."""
    people = patients(4)
    campaign = started_welcome_campaign(service, people)
    full = people[1].mailbox
    Mailbox.objects.filter(pk=full.pk).update(used_bytes=F("quota_bytes"))
    # The plan reads room everywhere, as it would have just before the box filled up.
    monkeypatch.setattr(planning, "room_in", lambda box, size: Decision.ok())
    run_to_the_end(campaign)

    statuses = {ln.patient_id: (ln.status, ln.reason) for ln in campaign.lines.all()}
    assert "campaign chunk rolled back, sent again line by line" in caplog.text
    assert statuses.pop(people[1].pk) == (CampaignLine.Status.FAILED, "over_quota")
    assert set(statuses.values()) == {(CampaignLine.Status.SENT, "")}
    assert not Entry.objects.filter(mailbox=full).exists()
    assert [Entry.objects.filter(mailbox=p.mailbox).count() for p in people if p.pk != people[1].pk] == [1, 1, 1]
