"""A very long text message on a patient's phone and in the webmail (Chromium at 375 px): the
page opens with the start of the text, a visible notice that the message is shown in part, and a
download of the whole message that works."""

import pytest
from django.conf import settings
from django.urls import reverse

from mailboxes.compose import send_from_mailbox
from mailboxes.models import Entry
from tests.patients.test_long_body import long_text

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _check_notice_and_download(page, link_name):
    notice = page.get_by_test_id("body-cut")
    notice.scroll_into_view_if_needed()
    assert notice.is_visible()
    assert "seul son début est affiché" in notice.inner_text()
    box = notice.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375 + 1
    link = page.get_by_role("link", name=link_name)
    assert link.is_visible()
    with page.expect_download() as download:
        link.click()
    data = download.value.path().read_bytes()
    assert b"FIN-DU-MESSAGE" in data  # the whole message, beyond what the page shows


def test_a_patient_opens_a_very_long_message_on_a_phone(cast, login, live_server):
    text = long_text(3 * settings.BODY_DISPLAY_MAX_CHARS)
    message = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.paul_patient.address], subject="Compte rendu complet", text=text
    ).message
    entry = Entry.objects.get(mailbox=cast.paul_box, message=message)
    page = login(cast.paul.username)
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(live_server.url + reverse("patients:message", args=[entry.pk]))
    assert page.get_by_text("Ligne de compte rendu numéro 0000000.").is_visible()
    assert page.get_by_text("FIN-DU-MESSAGE").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    # Plain words for the patient: what the download is, no file extension.
    assert ".eml" not in page.inner_text("main")
    _check_notice_and_download(page, "Télécharger le message en entier")


def test_a_professional_opens_a_very_long_message_on_a_phone(cast, login, live_server):
    text = long_text(3 * settings.BODY_DISPLAY_MAX_CHARS)
    message = send_from_mailbox(
        cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="Compte rendu complet", text=text
    ).message
    entry = Entry.objects.get(mailbox=cast.alice_box, message=message)
    page = login(cast.alice.username)
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(live_server.url + reverse("webmail:message", args=[entry.pk]))
    assert page.get_by_text("FIN-DU-MESSAGE").count() == 0
    _check_notice_and_download(page, "Télécharger le message complet (.eml)")
