"""A list's send as a screen reader hears it, at 1366 px and at 375 px: the progress bar is a
progressbar named by its « N messages traités sur M » with its values, a polite live region that
htmx never replaces says the send's real changes (a line sent, a lost connection, the end with its
report) and nothing at a poll that changed nothing, and axe-core finds no violation."""

import time

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from automation import campaign_sending, campaigns
from automation.models import Campaign, MessageModel
from tests.automation.conftest import in_days, patients, service  # noqa: F401 - fixture
from tests.automation.test_campaigns import to_csv
from tests.e2e.a11y.test_statistics_phone import _violations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Counts the htmx swaps and the changes of the live region; marks the region, which a reload or a
# swap of the region itself would lose.
WATCH = """() => {
  window.swaps = 0; window.spoken = [];
  document.body.addEventListener("htmx:afterSettle", () => { window.swaps += 1; });
  const live = document.querySelector("[data-progress-live]");
  live.dataset.watched = "yes";
  new MutationObserver(() => window.spoken.push(live.textContent))
    .observe(live, {childList: true, characterData: true, subtree: true});
}"""


def _progressbar(page) -> tuple:
    """(name, min, max, now) of the page's one progressbar in Chromium's accessibility tree,
    once it says `now` is what the DOM's <progress> holds (the tree follows the DOM)."""
    cdp = page.context.new_cdp_session(page)
    deadline = time.monotonic() + 5
    while True:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        (bar,) = [n for n in nodes if not n.get("ignored") and n.get("role", {}).get("value") == "progressbar"]
        props = {p["name"]: p["value"].get("value") for p in bar.get("properties", [])}
        now = bar.get("value", {}).get("value")  # Chromium gives aria-valuenow as the node's value
        found = (bar["name"]["value"], props.get("valuemin"), props.get("valuemax"), now)
        if found[3] == float(page.locator("#progress-bar").get_attribute("value")) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _polls_pass(page, count: int) -> None:
    """Wait until htmx has polled (and swapped) the progress `count` more times."""
    seen = page.evaluate("window.swaps")
    page.wait_for_function(f"window.swaps >= {seen + count}", timeout=10000)


@pytest.mark.parametrize("width,height", [(1366, 768), (375, 812)])
def test_a_sending_list_speaks_its_progress(service, login, live_server, page, settings, width, height):  # noqa: F811
    settings.AUTOMATION_CAMPAIGN_CHUNK = 1
    people = patients(3)
    data = to_csv([[p.ins, in_days(9).strftime("%d/%m/%Y"), "9:00"] for p in people], headers=["INS", "Date", "Heure"])
    model = service.models[MessageModel.Kind.CONVOCATION]
    campaign = campaigns.create_campaign(model, filename="l.csv", data=data, user=service.cast.bob)
    campaigns.validate(campaign)
    page.set_viewport_size({"width": width, "height": height})
    login(service.cast.bob.username)
    page.goto(live_server.url + reverse("automation:campaign", args=[campaign.pk]))
    page.get_by_test_id("start").click()
    page.wait_for_load_state("networkidle")
    live = page.get_by_test_id("progress-live")
    assert (live.get_attribute("role"), live.get_attribute("aria-live")) == ("status", "polite")
    assert live.inner_text() == ""  # the page itself says where the send is
    assert _progressbar(page) == ("0 message traité sur 3", 0, 3, 0)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert _violations(page) == []
    page.evaluate(WATCH)

    _polls_pass(page, 2)  # polls that changed nothing say nothing
    assert page.evaluate("window.spoken") == []

    campaign_sending.process_batch(campaign.pk, max_lines=1)
    expect(live).to_have_text("Envoi en cours : 1 message traité sur 3.", timeout=10000)
    assert _progressbar(page) == ("1 message traité sur 3", 0, 3, 1)
    _polls_pass(page, 2)
    assert page.evaluate("window.spoken") == ["Envoi en cours : 1 message traité sur 3."]

    # The connection drops: said once, and shown; back, the progress is said again.
    page.route("**/progression", lambda route: route.abort())
    error = page.locator("[data-progress-error]")
    expect(error).to_be_visible(timeout=10000)
    expect(live).to_have_text(error.inner_text())
    page.unroute("**/progression")
    expect(live).to_have_text("Envoi en cours : 1 message traité sur 3.", timeout=10000)
    expect(error).to_be_hidden()

    campaign_sending.process_batch(campaign.pk, max_lines=2)
    assert Campaign.objects.get().status == Campaign.Status.DONE
    # The report replaces the send in place, no reload: the same live region says the end.
    expect(live).to_have_text(
        "Envoi terminé, le rapport est affiché : 3 envoyés, 0 retour automatique, 0 échec.", timeout=10000
    )
    assert page.get_by_test_id("report-sent").inner_text() == "3"
    assert live.get_attribute("data-watched") == "yes"
    assert page.evaluate("window.spoken")[-1].startswith("Envoi terminé")
    assert _progressbar(page) == ("3 messages traités sur 3", 0, 3, 3)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert _violations(page) == []
