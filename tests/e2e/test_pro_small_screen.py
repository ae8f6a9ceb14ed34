"""The professionals' file fields on a phone, in Chromium: at 375 px, and at 320 px with the text
at 200 %, a file field's button is whole on the screen (the composer's attachments, a model's
permanent attachments, a list to upload), opens the chooser and the names chosen are written out."""

import pytest

from tests.automation.conftest import service  # noqa: F401 - fixture
from tests.e2e.test_patient_elderly_layout import FILE_PICKER_JS, SIDEWAYS_JS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FILE_PAGES = ["/pro/ecrire/", "/pro/automatisation/modeles/nouveau", "/pro/automatisation/campagnes/nouvelle"]


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
