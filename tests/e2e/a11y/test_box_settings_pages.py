"""A box's settings pages in Chromium (RULES.md §6: absence message, forwarding, sorting rules):
reached from the box's tools, filled as a doctor would, at 1366 px and on a 375 px phone, with
no sideways scrolling and no serious axe violation."""

import re

import pytest
from django.urls import reverse

from mailboxes.models import AbsenceMessage, BoxRule, Forwarding
from tests.e2e.a11y.conftest import serious_violations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NO_SIDEWAYS = "document.documentElement.scrollWidth <= window.innerWidth + 1"


@pytest.mark.parametrize("width", [1366, 375])
def test_absence_forwarding_and_rules_pages(cast, login, live_server, page, width):
    page.set_viewport_size({"width": width, "height": 800 if width == 375 else 768})
    login("alice")
    page.goto(f"{live_server.url}{reverse('webmail:mailbox', args=[cast.alice_box.pk])}")
    page.click("summary:has-text('Gérer cette boîte')")
    page.click('a:has-text("Message d\'absence")')
    page.wait_for_url(re.compile(r"/absence/$"))
    assert page.evaluate(NO_SIDEWAYS)
    assert serious_violations(page) == []
    page.check("#id_enabled")
    page.fill("#id_starts_on", "2026-11-01")
    page.fill("#id_ends_on", "2026-12-15")
    page.fill("#id_text", "Absente jusqu'au 15 décembre. Urgences : cardiologie@ch-troispics.mssante.fr.")
    page.click("button:has-text('Enregistrer')")
    page.locator(".flash", has_text="Message d'absence activé.").wait_for()
    absence = AbsenceMessage.objects.get(mailbox=cast.alice_box)
    assert absence.enabled and str(absence.ends_on) == "2026-12-15"

    page.click(".settings-tabs a:has-text('Transfert')")
    page.wait_for_url(re.compile(r"/transfert/$"))
    assert page.evaluate(NO_SIDEWAYS)
    assert serious_violations(page) == []
    page.check("#id_enabled")
    page.fill("#id_address", "alice.martin@gmail.com")
    page.click("button:has-text('Enregistrer')")
    error = page.locator(".errorlist", has_text="n'appartient pas à l'espace de confiance MSSanté")
    error.wait_for()
    assert page.evaluate(NO_SIDEWAYS)
    assert not Forwarding.objects.exists()
    page.fill("#id_address", cast.charlie_box.address)
    page.click("button:has-text('Enregistrer')")
    page.locator(".flash", has_text="Transfert automatique activé.").wait_for()
    assert Forwarding.objects.get().address == cast.charlie_box.address

    page.click(".settings-tabs a:has-text('Règles de tri')")
    page.wait_for_url(re.compile(r"/regles/$"))
    page.select_option("#id_field", "subject")
    page.fill("#id_contains", "échographie")
    page.select_option("#id_move_to", label="Archives")
    page.check("#id_flag")
    page.click("button:has-text('Ajouter la règle')")
    page.locator(".flash", has_text="Règle ajoutée").wait_for()
    assert "Si l'objet contient « échographie »" in page.inner_text("[data-testid=rules]")
    assert page.evaluate(NO_SIDEWAYS)
    assert serious_violations(page) == []
    assert BoxRule.objects.get().move_to.name == "Archives"
