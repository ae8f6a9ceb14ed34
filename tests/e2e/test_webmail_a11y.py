"""axe-core on the three main pages of the webmail: no serious or critical violation."""

from pathlib import Path

import pytest
from django.conf import settings

from mailboxes import compose
from mailboxes.models import Entry

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    # axe is injected as an inline script, which the product's strict CSP rightly refuses.
    return {**browser_context_args, "bypass_csp": True}


def violations(page):
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_list_reading_and_compose_pages_pass_axe(cast, login, live_server):
    result = compose.send_from_mailbox(
        cast.charlie_box,
        cast.charlie,
        to=[cast.cardio.address],
        subject="Adressage",
        text="Bonjour",
        html="<p>Bonjour <strong>consœur</strong></p>",
        attachments=[("lettre.pdf", "application/pdf", b"%PDF-1.4 x")],
    )
    entry = Entry.objects.get(mailbox=cast.cardio, message=result.message)
    page = login("bob")
    pages = {
        "liste": f"{live_server.url}/pro/",
        "lecture": f"{live_server.url}/pro/message/{entry.pk}/",
        "rédaction": f"{live_server.url}/pro/ecrire/?reponse={entry.pk}&mode=reply",
        "aide": f"{live_server.url}/pro/aide/",
    }
    found = {}
    for name, url in pages.items():
        page.goto(url)
        page.wait_for_load_state("networkidle")
        found[name] = violations(page)
    assert found == {name: [] for name in pages}
    # At a tablet's width the panes still fit without a horizontal scroll.
    page.set_viewport_size({"width": 820, "height": 1100})
    page.goto(pages["liste"])
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
