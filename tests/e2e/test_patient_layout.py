"""Issue 16 items 4 (patient side), 7, 9, 10 in Chromium: no patient or record page scrolls
sideways at 1366×768 or 375×812, nothing is cut off inside a scrolling table (the measures'
delete column), inputs are at least 16 px on a phone, the thread reads newest last with its end
marker, one navigation, "add a row" and the prefilled date of a saved attachment."""

import datetime

import pytest
from django.utils import timezone

from health_record.api import save_document
from health_record.models import HistoryItem
from mailboxes.compose import send_from_mailbox
from mailboxes.models import Entry, Folder
from patients.conversation import close_conversation
from tests.e2e.patient_pages import patient_page_urls
from tests.record.profiles import fill_profile

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
SIZES = [(1366, 768), (375, 812)]

# What overflows: the document itself, any scrolling box (a table in `.table-wrap`), or a control
# whose right edge leaves the screen.
OVERFLOW_JS = """() => {
  const width = window.innerWidth;
  const out = [];
  if (document.documentElement.scrollWidth > width) out.push('page ' + document.documentElement.scrollWidth);
  document.querySelectorAll('.table-wrap').forEach(el => {
    if (el.scrollWidth > el.clientWidth + 1) out.push('table-wrap ' + el.scrollWidth + '>' + el.clientWidth);
  });
  document.querySelectorAll('main a, main button, main input, main select, main textarea').forEach(el => {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > width + 1) out.push((el.textContent || el.name || el.tagName).trim().slice(0, 40) + ' ' + Math.round(r.right));
  });
  return out;
}"""

SMALL_INPUTS_JS = """() => Array.from(document.querySelectorAll('main input:not([type=hidden]):not([type=checkbox]):not([type=radio]), main select, main textarea'))
  .filter(el => el.offsetParent !== null && parseFloat(getComputedStyle(el).fontSize) < 16)
  .map(el => el.name + ' ' + getComputedStyle(el).fontSize)"""


def story(cast):
    """Paul's space with everything a page can show: a thread with documents and its end, a
    reply, a full profile, measures of every kind, documents."""
    long_name = "compte-rendu-de-consultation-de-cardiologie-interventionnelle-du-29-novembre.pdf"
    first = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.paul_patient.address],
        subject="Préparation de votre examen et consignes détaillées pour la journée d'hospitalisation",
        text="Bonjour,\nvoici les consignes : https://www.exemple-tres-long.fr/un/chemin/tres/long/sans/espace/aucune\n",
        attachments=[(long_name, "application/pdf", PDF)],
    ).message
    send_from_mailbox(
        cast.paul_box,
        cast.paul,
        to=[cast.alice_box.address],
        subject="RE : examen",
        text="Merci.",
        in_reply_to=first,
        source="patient",
    )
    close_conversation(cast.alice_box, cast.paul_patient, cast.alice)
    send_from_mailbox(cast.cardio, cast.bob, to=[cast.paul_patient.address], subject="Rendez-vous", text="Bonjour.")
    fill_profile(cast.paul_patient)
    document = save_document(
        cast.paul_patient,
        data=PDF,
        filename=long_name,
        title="Compte rendu de consultation de cardiologie",
        date=datetime.date(2025, 3, 1),
        category="report",
        kind="health",
    )
    return first, document


def patient_urls(cast, first, document):
    entry = Entry.objects.get(mailbox=cast.paul_box, folder__role=Folder.Role.INBOX, message=first)
    open_entry = Entry.objects.get(
        mailbox=cast.paul_box, folder__role=Folder.Role.INBOX, message__subject="Rendez-vous"
    )
    attachment = first.attachments.get()
    urls = patient_page_urls(cast, entry, open_entry, attachment, document)
    from health_record.profile import SECTIONS

    return urls + [f"/dossier/profil/{s.key}/" for s in SECTIONS]


def test_no_patient_page_scrolls_sideways_at_1366_or_375(cast, login, live_server):
    first, document = story(cast)
    page = login(cast.paul.username)
    urls = patient_urls(cast, first, document)
    problems = {}
    small = {}
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        for url in urls:
            response = page.goto(live_server.url + url)
            assert response.status == 200, url
            found = page.evaluate(OVERFLOW_JS)
            if found:
                problems[f"{width} {url}"] = found
            if width == 375:
                too_small = page.evaluate(SMALL_INPUTS_JS)
                if too_small:
                    small[url] = too_small
    assert problems == {}
    assert small == {}
    # The measures' delete buttons are on screen on a phone (they were cut off).
    page.goto(live_server.url + "/dossier/mesures/")
    buttons = page.locator("table.record-table button")
    assert buttons.count() > 0
    for index in range(min(buttons.count(), 5)):
        box = buttons.nth(index).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375
        assert box["height"] < 40  # "Supprimer" on one line, not broken inside the word


def test_thread_navigation_add_a_row_and_prefilled_date(cast, login, live_server):
    first, _document = story(cast)
    page = login(cast.paul.username)
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(live_server.url + "/patient/")
        page.get_by_test_id("conversation-link").filter(has_text="Alice").click()
        messages = page.get_by_test_id("thread-message")
        messages.first.wait_for()  # the thread page has loaded (the click returns before it)
        assert messages.count() == 2
        assert "Bonjour" in messages.nth(0).inner_text() and "Merci." in messages.nth(1).inner_text()
        end = page.get_by_test_id("end-of-exchange")
        assert end.is_visible() and "Fin de l’échange" in end.inner_text()
        assert "[FIN]" not in page.inner_text("main")
        # One navigation from messages to record and back.
        page.get_by_test_id("patient-nav").get_by_role("link", name="Mes mesures").click()
        assert page.url.endswith("/dossier/mesures/")
        page.get_by_test_id("patient-nav").get_by_role("link", name="Mes messages").click()
        assert page.url.endswith("/patient/")

    # Saving the received document: the date is the message's, already filled.
    page.goto(live_server.url + f"/patient/piece-jointe/{first.attachments.get().pk}/enregistrer")
    assert page.input_value("input[name=date]") == timezone.localdate(first.date or first.created_at).isoformat()

    # A profile list takes more rows than it showed, in one save.
    page.goto(live_server.url + "/dossier/profil/history/")
    before = HistoryItem.objects.count()
    shown = page.locator("fieldset.row-fieldset").count()
    for _ in range(3):
        page.get_by_role("button", name="Ajouter une ligne").click()
    assert page.locator("fieldset.row-fieldset").count() == shown + 3
    new_rows = page.locator("fieldset.row-fieldset").filter(has_text="Nouvel élément")
    added = new_rows.count()
    assert added >= 5  # the blank rows shown plus the three added
    for index in range(added):
        row = new_rows.nth(index)
        row.locator("select").select_option("medical")
        row.get_by_label("description").fill(f"Maladie {index}")
    page.get_by_role("button", name="Enregistrer").click()
    assert "enregistrée" in page.locator(".flash").inner_text()
    assert HistoryItem.objects.count() == before + added
