"""Issue 16 item 10: saving a received document prefills its date from the message; profile
lists take any number of rows; no "---------" option is ever shown to a patient."""

import pytest
from django.utils import timezone

from health_record.models import Document, HistoryItem
from health_record.profile import SECTIONS
from tests.patients.conftest import PDF, pro_send
from tests.record.conftest import formset_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def paul(cast, client):
    client.force_login(cast.paul)
    return client


def test_saving_a_received_document_prefills_the_date_of_the_message(cast, paul):
    sent = pro_send(
        cast.alice_box, cast.alice, cast.paul_patient.address, attachments=[("cr.pdf", "application/pdf", PDF)]
    ).message
    attachment = sent.attachments.get()
    url = f"/patient/piece-jointe/{attachment.pk}/enregistrer"
    page = paul.get(url).content.decode()
    day = timezone.localdate(sent.date or sent.created_at)
    # A date input reads ISO dates only: "29/11/2026" would show an empty field.
    assert f'type="date" name="date" value="{day.isoformat()}"' in page
    assert 'value="cr"' in page  # the title too

    response = paul.post(url, {"title": "cr", "date": day.isoformat(), "category": "report", "kind": "health"})
    assert response.status_code == 302
    assert Document.objects.get(patient=cast.paul_patient).date == day


def test_no_dashes_option_on_any_patient_page(cast, paul):
    sent = pro_send(
        cast.alice_box, cast.alice, cast.paul_patient.address, attachments=[("cr.pdf", "application/pdf", PDF)]
    ).message
    attachment = sent.attachments.get()
    urls = [
        "/patient/",
        "/patient/parametres",
        "/patient/ecrire",
        f"/patient/piece-jointe/{attachment.pk}/enregistrer",
        "/dossier/",
        "/dossier/mesures/",
        "/dossier/documents/",
        "/dossier/documents/ajouter/",
    ] + [f"/dossier/profil/{s.key}/" for s in SECTIONS]
    for url in urls:
        response = paul.get(url)
        assert response.status_code == 200, url
        assert "---------" not in response.content.decode(), url
    history = paul.get("/dossier/profil/history/").content.decode()
    assert '<option value="" selected>Choisir…</option>' in history


def test_a_profile_list_takes_any_number_of_rows_in_one_save(cast, paul):
    page = paul.get("/dossier/profil/history/").content.decode()
    assert "data-add-row=" in page and "<template data-empty-row=" in page and "rows-__prefix__-kind" in page
    rows = [{"kind": "medical", "description": f"Maladie {i}", "year": str(2000 + i)} for i in range(7)]
    response = paul.post("/dossier/profil/history/", formset_data(rows))
    assert response.status_code == 302
    assert HistoryItem.objects.filter(profile__patient=cast.paul_patient).count() == 7
