"""The professionals' file fields and the screens where a 6-digit code is typed, on a phone, in
Chromium: at 375 px, and at 320 px with the text at 200 %, a file field's button is whole on the
screen (the composer's attachments, a model's permanent attachments, a list to upload), opens the
chooser and the names chosen are written out; the code screens (sign-in second factor, confirming
with a code, activating the second factor) never scroll sideways, their controls are 44 px
targets, the code field is labelled, numeric, filled in by the phone's one-time-code suggestion,
and a wrong code is said out loud (an alert the field points to)."""

import pytest
from allauth.mfa.models import Authenticator

from tests.automation.conftest import service  # noqa: F401 - fixture
from tests.e2e.test_patient_elderly_layout import FILE_PICKER_JS, SIDEWAYS_JS, SMALL_TARGETS_JS
from tests.foundation.test_mfa_onboarding import totp

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FILE_PAGES = ["/pro/ecrire/", "/pro/automatisation/modeles/nouveau", "/pro/automatisation/campagnes/nouvelle"]
SECRET = "JBSWY3DPEHPK3PXP"


def text_at(page, percent):
    page.evaluate(f"document.documentElement.style.fontSize = '{percent}%'")


def test_every_professional_file_field_is_whole_on_a_phone(service, login, live_server):  # noqa: F811
    page = login("bob")
    cut_off, sideways = {}, {}
    for width in (375, 320):
        page.set_viewport_size({"width": width, "height": 700})
        for url in FILE_PAGES:
            assert page.goto(live_server.url + url).status == 200, url
            assert page.locator("main input[type=file]").count() >= 1, url
            for percent in (100, 200) if width == 320 else (100,):
                text_at(page, percent)
                if found := page.evaluate(FILE_PICKER_JS):
                    cut_off[f"{width} px {percent} % {url}"] = found
                if found := page.evaluate(SIDEWAYS_JS):
                    sideways[f"{width} px {percent} % {url}"] = found
    assert cut_off == {}
    assert sideways == {}


@pytest.mark.parametrize(
    ("url", "name", "label", "chosen"),
    [
        ("/pro/ecrire/", "attachments", "Pièces jointes", "courrier-d-adressage-cardiologie-lambert.pdf"),
        ("/pro/automatisation/campagnes/nouvelle", "file", "Liste des patients (CSV)", "Fichier choisi : "),
    ],
)
def test_at_320_px_and_200_percent_the_file_button_chooses_and_says_which(
    service,  # noqa: F811
    login,
    live_server,
    url,
    name,
    label,
    chosen,
):
    page = login("bob")
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(live_server.url + url)
    text_at(page, 200)
    # The input is named by its field's label (a screen reader says what it is for).
    assert page.locator(f"#id_{name}").evaluate("el => el.labels[0].innerText").startswith(label)
    button = page.locator(f"label.file-button[for=id_{name}]")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 320 and box["height"] >= 44, box
    with page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(
        {"name": "courrier-d-adressage-cardiologie-lambert.pdf", "mimeType": "application/pdf", "buffer": b"%PDF"}
    )
    said = page.locator(f"#id_{name}").evaluate(
        "el => el.closest('.field').querySelector('[data-role=file-summary], [data-file-list]').innerText"
    )
    assert chosen in said and "courrier-d-adressage-cardiologie-lambert.pdf" in said, said
    # From the keyboard: the input is the stop and its ring shows on the button.
    page.focus(f"#id_{name}")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == f"id_{name}"
    ring = button.evaluate("el => [getComputedStyle(el).outlineStyle, parseFloat(getComputedStyle(el).outlineWidth)]")
    assert ring[0] != "none" and ring[1] >= 2, ring


CODE_FIELD_JS = """() => {
  const input = document.querySelector('main input[name=code]');
  if (!input) return null;
  const labels = Array.from(input.labels).filter(l => l.offsetParent !== null && l.innerText.trim());
  const described = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean)
    .map(id => document.getElementById(id)).filter(Boolean);
  return {
    inputmode: input.getAttribute('inputmode'),
    autocomplete: input.getAttribute('autocomplete'),
    label: labels.map(l => l.innerText.trim()).join(' '),
    invalid: input.getAttribute('aria-invalid'),
    alert: described.filter(el => el.closest('[role=alert]')).map(el => el.innerText.trim()).join(' '),
  };
}"""


def check_code_screen(page, name):
    """At 320 px: 44 px targets, nothing sideways (text at 200 % too), the code field as a phone
    wants it; a wrong code then comes back as an alert the field points to."""
    page.set_viewport_size({"width": 320, "height": 640})
    page.wait_for_load_state()
    assert page.evaluate(SMALL_TARGETS_JS) == [], name
    assert page.evaluate(SIDEWAYS_JS) == [], name
    text_at(page, 200)
    assert page.evaluate(SIDEWAYS_JS) == [], name
    assert page.evaluate(SMALL_TARGETS_JS) == [], name
    field = page.evaluate(CODE_FIELD_JS)
    assert field is not None, name
    assert field["inputmode"] == "numeric" and field["autocomplete"] == "one-time-code", (name, field)
    assert "code" in field["label"].lower(), (name, field)
    page.fill("main input[name=code]", "000000")
    page.locator("main input[name=code]").press("Enter")
    page.wait_for_load_state()
    field = page.evaluate(CODE_FIELD_JS)
    assert field["invalid"] == "true" and field["alert"], (name, field)
    text_at(page, 200)
    assert page.evaluate(SIDEWAYS_JS) == [], name


def test_the_code_screens_fit_a_small_phone(cast, page, live_server, password):
    Authenticator.objects.create(user=cast.alice, type=Authenticator.Type.TOTP, data={"secret": SECRET})
    page.goto(f"{live_server.url}/comptes/login/")
    page.fill("input[name=login]", "alice")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/2fa/authenticate/**")
    check_code_screen(page, "sign-in second factor")
    page.fill("main input[name=code]", totp(SECRET))
    page.locator("main input[name=code]").press("Enter")
    page.wait_for_url("**/pro/")
    # Confirming with a code (a sensitive setting after a while): allauth's reauthentication by code.
    page.goto(f"{live_server.url}/comptes/2fa/reauthenticate/")
    check_code_screen(page, "confirm with a code")


def test_the_activation_code_field_fits_a_small_phone(cast, login, live_server, password):
    page = login("alice")
    page.goto(f"{live_server.url}/comptes/2fa/totp/activate/")
    if "reauthenticate" in page.url:
        page.fill("input[name=password]", password)
        page.get_by_role("button", name="Confirmer").click()
        page.wait_for_url("**/totp/activate/**")
    check_code_screen(page, "activate the second factor")
