"""Contacts in Chromium (issue 16 item 19): the book filled from the mail exchanged, edited, and
proposed while typing a recipient; at 1366 px and on a 375 px phone, no sideways scrolling and
no serious axe violation."""

import re

import pytest

from mailboxes import compose
from mailboxes.models import Message
from tests.e2e.a11y.conftest import serious_violations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NO_SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth + 1"


@pytest.mark.parametrize("width", [1366, 375])
def test_contacts_page_and_completion(cast, login, live_server, page, width):
    compose.send_from_mailbox(
        cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="Adressage", text="Bonjour."
    )
    page.set_viewport_size({"width": width, "height": 800 if width == 375 else 768})
    login("alice")
    page.click(".topnav a:has-text('Contacts')")
    page.wait_for_url(re.compile(r"/pro/contacts/$"))
    listing = page.locator("[data-testid=contacts]")
    assert "Dr Charlie DURAND" in listing.inner_text()
    assert "1 message échangé" in listing.inner_text()
    assert page.evaluate(NO_SIDEWAYS)
    assert serious_violations(page) == []
    page.click("a:has-text('Modifier')")
    page.fill("#id_note", "Médecin traitant de M. Lambert, Clinique du Lac")
    page.click("button:has-text('Enregistrer')")
    page.locator(".flash", has_text="Contact enregistré.").wait_for()
    assert "Médecin traitant" in page.inner_text("[data-testid=contacts]")

    page.click(".topnav a:has-text('Écrire')")
    page.wait_for_url(re.compile(r"/pro/ecrire/"))
    page.locator("#id_to").press_sequentially("durand", delay=20)
    suggestion = page.locator("#to-suggestions [role=option][data-contact]")
    suggestion.first.wait_for()
    assert suggestion.count() == 1 and "Dr Charlie DURAND" in suggestion.inner_text()
    assert page.evaluate(NO_SIDEWAYS)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert page.input_value("#id_to") == f"{cast.charlie_box.address}, "
    page.fill("#id_subject", "Réponse")
    page.fill("#body-editor", "Merci.")
    page.click("[data-send]")
    page.wait_for_url(re.compile(r"/pro/message/\d+/$"))
    assert Message.objects.get(subject="Réponse").to == [{"address": cast.charlie_box.address, "name": ""}]
