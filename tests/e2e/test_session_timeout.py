"""Issue 15 item 22 in Chromium: the inactivity warning, "Rester connecté", and the end of the
session with the message being written saved as a draft first."""

import re

import pytest

from mailboxes.models import Entry

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_warning_then_stay_then_expiry_keeps_the_draft(cast, login, live_server, settings):
    settings.SESSION_INACTIVITY_TIMEOUT = 9
    settings.SESSION_INACTIVITY_WARNING = 4
    page = login("alice")
    page.goto(f"{live_server.url}/pro/ecrire/")
    page.fill("#id_to", cast.charlie_box.address)
    page.fill("#id_subject", "Compte rendu en cours")
    page.fill("#body-editor", "Bonjour,\nle patient a bien été vu ce matin.")
    warning = page.locator("#session-warning")
    warning.wait_for(state="visible", timeout=9000)
    assert "Votre session va bientôt prendre fin" in warning.inner_text()
    # The warning saved the draft already.
    page.locator("[data-draft-status]", has_text="Brouillon enregistré").wait_for(timeout=5000)
    page.click("[data-session-stay]")
    warning.wait_for(state="hidden")
    # Left alone: warned again, then signed out on the login page, the draft kept.
    warning.wait_for(state="visible", timeout=9000)
    page.wait_for_url(re.compile(r"/comptes/login/\?expiree=1"), timeout=10000)
    assert "période d'inactivité" in page.content()
    draft = Entry.objects.get(mailbox=cast.alice_box, is_draft=True)
    assert draft.message.subject == "Compte rendu en cours"
    assert "bien été vu ce matin" in draft.message.text_body
    page.goto(f"{live_server.url}/pro/")
    assert "/comptes/login/" in page.url
