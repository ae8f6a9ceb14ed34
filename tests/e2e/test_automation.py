"""Automation in a browser (issue 9): the secretary's whole journey at 1366 px — upload a list,
map its columns, read the check, preview a patient's message, send, watch the progress (it
survives a reload), read and download the report — with the embedded scheduler sending in the
background; and the patient's upcoming appointment with "add to my calendar" at 375 px."""

import csv
import io
import re
import threading

import icalendar
import pytest
from django.db import connection

from automation import campaign_sending, convocations
from automation.models import Campaign, MessageModel
from mailboxes.models import Entry
from tests.automation.conftest import in_days, patients, service  # noqa: F401 - fixture
from tests.automation.test_campaigns import to_csv

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class EmbeddedScheduler(threading.Thread):
    """What `manage.py runscheduler` does without a broker: the campaign sweeper, again and again."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()

    def run(self):
        try:
            while not self.stop.is_set():
                campaign_sending.sweep()
                self.stop.wait(0.3)
        finally:
            connection.close()


def test_secretary_journey(service, page, login, live_server, settings):  # noqa: F811
    settings.AUTOMATION_CAMPAIGN_CHUNK = 3
    settings.AUTOMATION_EMBEDDED_BUDGET_SECONDS = 1
    page.set_viewport_size({"width": 1366, "height": 900})
    people = patients(12)
    date = in_days(21).strftime("%d/%m/%Y")
    rows = [[p.ins, date, "10:30", "Hall B"] for p in people]
    rows.insert(3, ["158037511204567", date, "10:30", "Hall B"])  # wrong key: line 5
    rows.append([people[2].ins, date, "11:00", "Hall B"])  # duplicate: line 15
    data = to_csv(rows, headers=["INS", "Date", "Heure", "Salle d'attente"])

    login("bob")
    page.goto(f"{live_server.url}/pro/automatisation/")
    page.get_by_role("link", name="Nouvel envoi à partir d'une liste").click()
    page.select_option("#id_model", label=f"Cardiologie — Convocation ({service.app.address})")
    page.set_input_files("#id_file", files=[{"name": "jour.csv", "mimeType": "text/csv", "buffer": data}])
    page.get_by_role("button", name="Lire la liste").click()

    # Map: the place column has a heading nobody could guess.
    assert page.input_value("#id_ins") == "INS" and page.input_value("#id_date_rdv") == "Date"
    page.select_option("#id_lieu", "Salle d'attente")
    page.get_by_role("button", name="Vérifier la liste").click()
    assert "Lignes prêtes à partir : 12 · lignes refusées : 2" in page.get_by_test_id("check-summary").inner_text()
    rows = page.get_by_test_id("problems").locator("tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").first.inner_text() == "5" and "clé" in rows.nth(0).inner_text()
    assert rows.nth(1).locator("td").first.inner_text() == "15" and "Doublon" in rows.nth(1).inner_text()
    assert not Entry.objects.filter(mailbox__kind="PAT").exists()  # nothing left yet

    # Preview the message of line 8 (people[5]: the heading is line 1, the bad line 5).
    page.select_option("#preview-line", "8")
    page.get_by_role("button", name="Voir le message de cette ligne").click()
    body = page.get_by_test_id("preview-body").inner_text()
    assert f"Bonjour {'M.' if people[5].sex == 'M' else 'Mme'} {people[5].birth_name.upper()}" in body
    assert "10 h 30" in body and "Hall B" in body

    page.get_by_test_id("start").click()
    assert "0 message traité sur 12" in page.get_by_test_id("progress").inner_text()
    page.reload()  # the progress is the campaign's, not the page's
    assert re.search(r"\d+ messages? traités? sur 12", page.get_by_test_id("progress").inner_text())

    scheduler = EmbeddedScheduler()
    scheduler.start()
    try:
        # htmx polls the progress; once done the page reloads itself into the report.
        page.get_by_test_id("report-sent").wait_for(timeout=30000)
    finally:
        scheduler.stop.set()
        scheduler.join(timeout=10)
    assert page.get_by_test_id("report-sent").inner_text() == "12"
    assert Campaign.objects.get().status == Campaign.Status.DONE
    with page.expect_download() as download:
        page.get_by_test_id("report-csv").click()
    text = download.value.path().read_bytes().decode("utf-8-sig")
    report = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert len(report) == 15 and sum(1 for r in report[1:] if r[4] == "envoyé") == 12
    for person in people:
        assert Entry.objects.filter(mailbox=person.mailbox).count() == 1


def test_patient_adds_an_appointment_to_the_calendar_on_a_phone(service, page, login, live_server):  # noqa: F811
    cast = service.cast
    convocation = convocations.create_convocation(
        model=service.models[MessageModel.Kind.CONVOCATION],
        patient=cast.paul_patient,
        starts_at=in_days(6, 8, 45),
        user=cast.bob,
        values={"lieu": "Hôpital de jour, 3e étage"},
    )
    page.set_viewport_size({"width": 375, "height": 800})
    login(cast.paul.username)
    section = page.get_by_test_id("upcoming-convocations")
    assert "8 h 45" in section.inner_text() and "Hôpital de jour" in section.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    button = section.get_by_role("link", name="Ajouter à mon agenda")
    box = button.bounding_box()
    assert box["height"] >= 44 and box["x"] + box["width"] <= 375  # a thumb-sized target on screen
    with page.expect_download() as download:
        button.click()
    calendar = icalendar.Calendar.from_ical(download.value.path().read_bytes())
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == f"{convocation.uid}@ch-troispics.mssante.fr"
    assert event.decoded("DTSTART") == convocation.starts_at
