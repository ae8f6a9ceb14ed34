"""The administrators' dashboard and a statistics page in Chromium: the administrator lands on
the dashboard after signing in, axe-core finds no serious or critical violation, and neither page
scrolls sideways at 1366 px nor at a phone's 375 px."""

import pytest

from mailboxes.compose import send_from_mailbox
from operations.statistics import aggregate_day
from tests.e2e.a11y.conftest import serious_violations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_dashboard_and_statistics_fit_a_desktop_and_a_phone(cast, login, live_server):
    from django.utils import timezone

    send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.charlie_box.address, cast.paul_patient.address], subject="x", text="y"
    )
    aggregate_day(timezone.localdate())
    page = login(cast.ada.username)
    assert page.url == f"{live_server.url}/exploitation/"
    assert page.locator("h1").inner_text() == "Tableau de bord de l'exploitation"
    pages = {
        "tableau de bord": f"{live_server.url}/exploitation/",
        "statistiques": f"{live_server.url}/exploitation/statistiques/?pas=jour",
    }
    found = {}
    for width in (1366, 375):
        page.set_viewport_size({"width": width, "height": 900})
        for name, url in pages.items():
            page.goto(url)
            page.wait_for_load_state("networkidle")
            found[(name, width)] = serious_violations(page)
            scrolls = page.evaluate("document.documentElement.scrollWidth > window.innerWidth + 1")
            assert not scrolls, f"{name} scrolls sideways at {width} px"
    assert found == {key: [] for key in found}
    # The chart and its table carry the same numbers.
    page.goto(pages["statistiques"])
    assert page.locator("#h-messages").is_visible()
    assert page.locator("svg.stat-chart").count() >= 8
