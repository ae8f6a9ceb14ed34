"""axe-core on the patient's messaging pages at a phone's width (RULES.md §3: patients, often
elderly, on a phone): no serious or critical violation, and nothing scrolls sideways."""

import pytest
from django.urls import reverse

from mailboxes.compose import send_from_mailbox
from mailboxes.models import Entry
from tests.e2e.a11y.conftest import serious_violations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_patient_pages_pass_axe_on_a_phone(cast, login, live_server, page):
    sent = send_from_mailbox(
        cast.cardio,
        cast.bob,
        to=[cast.paul_patient.address],
        subject="Votre rendez-vous en cardiologie",
        text="Bonjour,\nvous êtes attendu le 3 décembre à 9 h 30.\n",
        attachments=[("convocation.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n")],
    ).message
    entry = Entry.objects.get(mailbox=cast.paul_box, message=sent)
    page.set_viewport_size({"width": 375, "height": 800})
    login(cast.paul.username)

    pages = {
        "boîte": reverse("patients:inbox"),
        "échange": reverse("patients:conversation", args=[entry.pk]),
        "message": reverse("patients:message", args=[entry.pk]),
        "réponse": reverse("patients:reply", args=[entry.pk]),
        "paramètres": reverse("patients:settings"),
        "blocage": reverse("patients:block", args=[cast.cardio.pk]),
        "clôture": reverse("patients:close_space"),
    }
    found, overflow = {}, {}
    for name, url in pages.items():
        page.goto(live_server.url + url)
        page.wait_for_load_state("networkidle")
        found[name] = serious_violations(page)
        overflow[name] = page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")

    assert found == {name: [] for name in pages}
    assert overflow == {name: False for name in pages}
