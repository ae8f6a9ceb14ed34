"""The statistics page's charts stay readable on a phone: at 375 px (and at 1366 px) the page never
scrolls sideways, no chart text is drawn smaller than 12 px nor over another one, a chart too wide
for its column scrolls inside its own focusable region and says so, its table of the same numbers
is there beside it, and axe-core finds no violation at all."""

import datetime

import pytest
from django.utils import timezone

from mailboxes.compose import send_from_mailbox
from operations.statistics import aggregate_day
from tests.e2e.a11y.conftest import AXE

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Per chart: the smallest text as drawn (its font size times the chart's scale), the pairs of
# texts whose boxes overlap, whether the chart scrolls inside its region, the region's tab stop.
CHARTS = """() => [...document.querySelectorAll("[data-testid=chart]")].map((region) => {
  const svg = region.querySelector("svg");
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  const texts = [...svg.querySelectorAll("text")];
  const boxes = texts.map((t) => t.getBoundingClientRect());
  const overlaps = [];
  boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b, j) => {
    if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5)
      overlaps.push([texts[i].textContent, texts[i + 1 + j].textContent]);
  }));
  return {
    title: svg.querySelector("title").textContent,
    smallest: Math.min(...texts.map((t) => parseFloat(getComputedStyle(t).fontSize) * scale)),
    overlaps,
    scrolls: region.scrollWidth > region.clientWidth,
    tabindex: region.getAttribute("tabindex"),
    role: region.getAttribute("role"),
  };
})"""


def _violations(page) -> list:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]


@pytest.mark.parametrize("width,height", [(1366, 768), (375, 812)])
def test_statistics_charts_are_readable_at_any_width(cast, login, live_server, page, width, height):
    today = timezone.localdate()
    for _ in range(3):
        send_from_mailbox(
            cast.alice_box, cast.alice, to=[cast.charlie_box.address, cast.paul_patient.address], subject="x", text="y"
        )
    aggregate_day(today)
    page.set_viewport_size({"width": width, "height": height})
    login(cast.ada.username)
    first = today - datetime.timedelta(days=59)
    # Two months day by day: 60 periods, the most crowded axis the page draws by default.
    page.goto(f"{live_server.url}/exploitation/statistiques/?pas=jour&du={first:%Y-%m-%d}&au={today:%Y-%m-%d}")
    page.wait_for_load_state("networkidle")

    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    charts = page.evaluate(CHARTS)
    assert len(charts) == 10
    assert [c["title"] for c in charts if c["smallest"] < 12] == []
    assert {c["title"]: c["overlaps"] for c in charts if c["overlaps"]} == {}
    assert {(c["tabindex"], c["role"]) for c in charts} == {("0", "region")}
    hint = page.locator(".chart-hint").first
    if width == 375:
        # Too wide for a phone: each chart scrolls in its region, never the page, and says so.
        assert all(c["scrolls"] for c in charts)
        assert hint.is_visible()
        assert "faites défiler le graphique de côté" in hint.inner_text()
        assert float(hint.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 12
    else:
        assert not any(c["scrolls"] for c in charts)
        assert not hint.is_visible()

    # The same numbers in a table beside each chart, readable, its header row first.
    block = page.locator("section.stat-block", has=page.locator("#h-messages"))
    table = block.get_by_role("region", name="Messages envoyés et reçus (tableau)").locator("table")
    assert table.locator("thead th").all_inner_texts() == ["Période", "envoyés", "reçus"]
    total = table.locator("tbody tr").last
    assert total.locator("th").inner_text() == "Total"
    assert total.locator("td").first.inner_text() == "3"
    assert table.locator("tbody tr").count() == 61
    assert table.evaluate("t => parseFloat(getComputedStyle(t).fontSize)") >= 12
    assert _violations(page) == []
