"""axe-core on the automation pages (issue 9) at the width of a secretary's screen, and on the
patient's inbox with its upcoming appointment at a phone's width: no serious or critical
violation, nothing scrolls sideways."""

import pytest
from django.urls import reverse

from automation import campaigns, convocations
from automation.models import MessageModel
from tests.automation.conftest import in_days, patients, service  # noqa: F401 - fixture
from tests.automation.test_campaigns import to_csv
from tests.e2e.a11y.conftest import serious_violations

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _check(page, live_server, pages):
    found, overflow = {}, {}
    for name, url in pages.items():
        page.goto(live_server.url + url)
        page.wait_for_load_state("networkidle")
        found[name] = serious_violations(page)
        overflow[name] = page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")
    assert found == {name: [] for name in pages}
    assert overflow == {name: False for name in pages}


def test_automation_pages_pass_axe(service, login, live_server, page):  # noqa: F811
    cast = service.cast
    model = service.models[MessageModel.Kind.CONVOCATION]
    people = patients(2)
    data = to_csv(
        [[p.ins, in_days(9).strftime("%d/%m/%Y"), "9:00"] for p in people] + [["1", "", ""]],
        headers=["INS", "Date", "Heure"],
    )
    campaign = campaigns.create_campaign(model, filename="l.csv", data=data, user=cast.bob)
    campaigns.validate(campaign)
    convocation = convocations.create_convocation(
        model=model, patient=cast.paul_patient, starts_at=in_days(10), user=cast.bob, values={}
    )
    page.set_viewport_size({"width": 1366, "height": 900})
    login(cast.bob.username)
    _check(
        page,
        live_server,
        {
            "accueil": reverse("automation:index"),
            "modèle": reverse("automation:model", args=[model.pk]),
            "nouveau modèle": reverse("automation:model_create"),
            "convocation": reverse("automation:convocation", args=[convocation.pk]),
            "nouvelle convocation": reverse("automation:convocation_create"),
            "nouvelle liste": reverse("automation:campaign_create"),
            "campagne": reverse("automation:campaign", args=[campaign.pk]),
        },
    )


def test_patient_inbox_with_an_appointment_passes_axe_on_a_phone(service, login, live_server, page):  # noqa: F811
    cast = service.cast
    convocations.create_convocation(
        model=service.models[MessageModel.Kind.CONVOCATION],
        patient=cast.paul_patient,
        starts_at=in_days(10),
        user=cast.bob,
        values={"lieu": "Bâtiment C"},
    )
    page.set_viewport_size({"width": 375, "height": 800})
    login(cast.paul.username)
    _check(page, live_server, {"boîte": reverse("patients:inbox")})
