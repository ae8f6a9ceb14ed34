"""Issue 16 item 11 in Chromium at 1366 and 375 px: the professional required to set up
two-factor authentication reads why, scans or copies the grouped secret, activates with a code,
reads what recovery codes are for and continues to the mail."""

import pytest

from tests.foundation.test_mfa_onboarding import totp

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FITS = "document.documentElement.scrollWidth <= window.innerWidth"


@pytest.mark.parametrize("width,height", [(1366, 768), (375, 812)])
def test_two_factor_onboarding(cast, page, live_server, password, settings, width, height):
    settings.MFA_REQUIRED_FOR_PROFESSIONALS = True
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{live_server.url}/comptes/login/")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")

    why = page.get_by_test_id("reauthenticate-why")
    assert "Vous allez activer la double authentification" in why.inner_text()
    assert page.evaluate(FITS)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Confirmer").click()

    assert page.get_by_test_id("mfa-qr").is_visible()
    secret_box = page.get_by_test_id("mfa-secret")
    grouped = secret_box.inner_text()
    assert " " in grouped and all(len(part) <= 4 for part in grouped.split())
    box = secret_box.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width  # never cut off
    page.get_by_role("button", name="Copier la clé").click()
    page.get_by_text("Clé copiée").wait_for()
    secret = page.evaluate("navigator.clipboard.readText()")
    assert secret == grouped.replace(" ", "")
    assert page.evaluate(FITS)

    page.get_by_label("Saisissez le code à 6 chiffres").fill(totp(secret))
    page.get_by_role("button", name="Activer").click()
    assert "chacun de ces codes remplace une fois le code" in page.get_by_test_id("recovery-why").inner_text()
    assert page.evaluate(FITS)
    page.get_by_test_id("continue-to-mail").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/pro/")
