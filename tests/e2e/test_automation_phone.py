"""The secretary's automation pages in Chromium at 1366 px and on a 375 px phone (found by
driving them: the models table and the model editor scrolled the page sideways on a phone), and
one whole path by keyboard alone: Tab to "Annuler le rendez-vous", Enter, read what the patient
will get, Tab to the confirmation, Enter."""

import pytest
from django.urls import reverse

from automation import convocations
from automation.models import Convocation, MessageModel
from tests.automation.conftest import in_days, service  # noqa: F401 - fixture
from tests.e2e.test_patient_layout import OVERFLOW_JS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def convoke(service):  # noqa: F811
    return convocations.create_convocation(
        model=service.models[MessageModel.Kind.CONVOCATION],
        patient=service.cast.paul_patient,
        starts_at=in_days(9, 14, 15),
        user=service.cast.bob,
        values={"lieu": "Hôpital de jour, bâtiment B, 3e étage"},
    )


@pytest.mark.parametrize("width", [1366, 375])
def test_no_automation_page_scrolls_sideways(service, page, login, live_server, width):  # noqa: F811
    convocation = convoke(service)
    model = service.models[MessageModel.Kind.CONVOCATION]
    page.set_viewport_size({"width": width, "height": 812})
    login(service.cast.bob.username)
    urls = [
        reverse("automation:index"),
        reverse("automation:model", args=[model.pk]),
        reverse("automation:model_create"),
        reverse("automation:convocation", args=[convocation.pk]),
        reverse("automation:convocation_create"),
        reverse("automation:campaign_create"),
    ]
    overflowing = {}
    for url in urls:
        page.goto(live_server.url + url)
        found = page.evaluate(OVERFLOW_JS)
        if found:
            overflowing[url] = found
    assert overflowing == {}
    # The long address of the sending box is on the index, inside the screen.
    page.goto(live_server.url + reverse("automation:index"))
    cell = page.get_by_role("cell", name=service.app.address).first
    box = cell.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width


def focus_by_tab(page, name: str, presses: int = 60) -> None:
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == name:
            return
    raise AssertionError(f"« {name} » never took the focus")


def test_cancelling_a_convocation_by_keyboard_asks_first(service, page, login, live_server):  # noqa: F811
    convocation = convoke(service)
    page.set_viewport_size({"width": 375, "height": 812})
    login(service.cast.bob.username)
    page.goto(live_server.url + reverse("automation:convocation", args=[convocation.pk]))

    focus_by_tab(page, "Annuler le rendez-vous")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    dialog = page.get_by_role("alertdialog")
    assert dialog.get_by_role("heading").inner_text() == "Annuler le rendez-vous ?"
    assert "Paul LAMBERT recevra un message d'annulation" in dialog.inner_text()
    convocation.refresh_from_db()
    assert convocation.status == Convocation.Status.SCHEDULED  # nothing happened yet

    focus_by_tab(page, "Oui, annuler le rendez-vous", presses=20)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "Convocation annulée" in page.inner_text("body")
    convocation.refresh_from_db()
    assert convocation.status == Convocation.Status.CANCELLED
