"""axe-core on the patient's record pages (profile with charts, a section form with errors,
measures, documents, a document preview): no serious or critical violation, and no horizontal
scroll at a phone's width."""

import datetime

import pytest

from health_record.api import save_document
from tests.e2e.a11y.conftest import serious_violations
from tests.record.profiles import fill_profile

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_record_pages_pass_axe_and_fit_a_phone(cast, login, live_server):
    fill_profile(cast.paul_patient)
    document = save_document(
        cast.paul_patient,
        data=b"%PDF-1.4\n%%EOF\n",
        filename="cr.pdf",
        title="Compte rendu",
        date=datetime.date(2025, 3, 1),
        category="report",
        kind="health",
    )
    page = login(cast.paul.username)
    base = f"{live_server.url}/dossier"
    pages = {
        "profil": f"{base}/",
        "section": f"{base}/profil/contacts/",
        "mesures": f"{base}/mesures/",
        "documents": f"{base}/documents/",
        "ajout": f"{base}/documents/ajouter/",
        "document": f"{base}/documents/{document.pk}/",
        "suppression": f"{base}/documents/{document.pk}/supprimer/",
    }
    found = {}
    for name, url in pages.items():
        page.goto(url)
        page.wait_for_load_state("networkidle")
        found[name] = serious_violations(page)
    # A form showing its errors.
    page.goto(pages["mesures"])
    page.select_option("select[name=kind]", "weight")
    page.fill("input[name=value]", "700")
    page.click("button[type=submit]")
    found["erreurs"] = serious_violations(page)
    assert found == {name: [] for name in found}

    page.set_viewport_size({"width": 375, "height": 800})
    for name in ("profil", "mesures", "documents", "section"):
        page.goto(pages[name])
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name
