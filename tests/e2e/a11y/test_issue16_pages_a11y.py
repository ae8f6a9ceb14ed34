"""axe-core on the pages issue 16 added or changed: a closed thread with its end-of-exchange
marker, a profile list after « Ajouter une ligne », and the two-factor onboarding (password
again, activation with the QR code and the secret, recovery codes): no serious or critical
violation at 1366 or 375 px."""

import pytest

from mailboxes.compose import send_from_mailbox
from mailboxes.models import Entry, Folder
from patients.conversation import close_conversation
from tests.e2e.a11y.conftest import serious_violations
from tests.foundation.test_mfa_onboarding import totp

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_thread_and_profile_rows_pass_axe(cast, login, live_server, page):
    first = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.paul_patient.address],
        subject="Résultats",
        text="Bonjour,\nvoici vos résultats.\n",
        attachments=[("resultats.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n")],
    ).message
    close_conversation(cast.alice_box, cast.paul_patient, cast.alice)
    entry = Entry.objects.get(mailbox=cast.paul_box, folder__role=Folder.Role.INBOX, message=first)
    login(cast.paul.username)
    found = {}
    for width in (1366, 375):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(f"{live_server.url}/patient/echange/{entry.pk}/")
        assert page.get_by_test_id("end-of-exchange").is_visible()
        found[f"fil {width}"] = serious_violations(page)
        page.goto(f"{live_server.url}/dossier/profil/history/")
        page.get_by_role("button", name="Ajouter une ligne").click()
        found[f"lignes {width}"] = serious_violations(page)
    assert found == {name: [] for name in found}


def test_two_factor_onboarding_passes_axe(cast, live_server, page, password, settings):
    settings.MFA_REQUIRED_FOR_PROFESSIONALS = True
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(f"{live_server.url}/comptes/login/")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    found = {"mot de passe": serious_violations(page)}
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Confirmer").click()
    page.get_by_test_id("mfa-qr").wait_for()
    found["activation"] = serious_violations(page)
    secret = page.get_by_test_id("mfa-secret").inner_text().replace(" ", "")
    page.get_by_label("Saisissez le code à 6 chiffres").fill(totp(secret))
    page.get_by_role("button", name="Activer").click()
    page.get_by_test_id("recovery-why").wait_for()
    found["codes de secours"] = serious_violations(page)
    assert found == {name: [] for name in found}
