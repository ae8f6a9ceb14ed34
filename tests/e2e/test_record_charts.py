"""The measures' charts read at the same text size on a phone and on a desktop: a chart drawn
for a wide screen and shrunk to a phone's card made its dates and values about 6 px high."""

import pytest

from tests.record.profiles import fill_profile

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FITS = "document.documentElement.scrollWidth <= window.innerWidth"
# Each chart's smallest rendered text height in CSS px, whether every text stays inside it, and
# whether two texts on one line (the dates, the legend) overlap.
TEXTS = """() => [...document.querySelectorAll('svg.measure-chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll('text')].map(t => t.getBoundingClientRect());
  return {
    name: svg.querySelector('title').textContent,
    smallest: Math.min(...texts.map(t => t.height)),
    inside: texts.every(t => t.left >= box.left - 0.5 && t.right <= box.right + 0.5),
    overlap: texts.some((a, i) => texts.some((b, j) => i < j && Math.abs(a.top - b.top) < 1
      && a.left < b.right && b.left < a.right)),
  };
})"""


@pytest.mark.parametrize("width,height", [(1366, 768), (375, 812)])
def test_chart_labels_are_legible_and_inside_at_both_widths(cast, login, live_server, width, height):
    fill_profile(cast.paul_patient)
    page = login(cast.paul.username)
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{live_server.url}/dossier/")
    charts = page.evaluate(TEXTS)
    names = {chart["name"] for chart in charts}
    assert {"poids (kg) au fil du temps", "tension artérielle (mmHg) au fil du temps"} <= names
    for chart in charts:
        # A 12 px font's line box is about 14 px high in DejaVu Sans; 6 px text gave 7.
        assert chart["smallest"] >= 13.5, chart
        assert chart["inside"], chart  # no date, value or legend cut at the edge
        assert not chart["overlap"], chart  # e.g. a middle date written over the first one
    assert page.evaluate(FITS)
    legend = page.get_by_role("img", name="tension artérielle (mmHg) au fil du temps").locator(
        "text", has_text="diastolique"
    )
    assert legend.is_visible()
