"""axe-core on the three main pages of the webmail: no serious or critical violation."""

import pytest

from mailboxes import compose
from mailboxes.models import Entry
from tests.e2e.a11y.conftest import serious_violations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


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
        found[name] = serious_violations(page)
    assert found == {name: [] for name in pages}
    # At a tablet's width the panes still fit without a horizontal scroll.
    page.set_viewport_size({"width": 820, "height": 1100})
    page.goto(pages["liste"])
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
