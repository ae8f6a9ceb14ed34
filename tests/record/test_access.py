"""Only the patient reaches their own record: another patient, a professional or an
administrator gets 404 for every document URL and never sees the profile or its PDF."""

import datetime

import pytest
from django.http import Http404
from django.urls import reverse

from health_record.api import document_for_user, save_document
from health_record.models import Measure
from tests.record.test_pdf import pdf_text

pytestmark = pytest.mark.django_db
PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture
def paul_document(cast):
    return save_document(
        cast.paul_patient,
        data=PDF,
        filename="cr.pdf",
        title="Compte rendu",
        date=datetime.date(2025, 3, 1),
        category="report",
        kind="health",
    )


DOCUMENT_URLS = ["document", "document_inline", "document_download", "document_delete"]


@pytest.mark.parametrize("who", ["pauline", "alice", "bob", "charlie", "ada"])
def test_nobody_else_reaches_pauls_documents(cast, client, paul_document, who):
    client.force_login(getattr(cast, who))
    for name in DOCUMENT_URLS:
        assert client.get(reverse(f"health_record:{name}", args=[paul_document.pk])).status_code == 404, name
    assert client.post(reverse("health_record:document_delete", args=[paul_document.pk])).status_code == 404
    with pytest.raises(Http404):
        document_for_user(getattr(cast, who), paul_document.pk)
    assert paul_document.__class__.objects.filter(pk=paul_document.pk).exists()


def test_an_unknown_id_and_a_foreign_id_look_the_same(cast, client, paul_document):
    client.force_login(cast.pauline)
    foreign = client.get(reverse("health_record:document", args=[paul_document.pk]))
    unknown = client.get(reverse("health_record:document", args=[paul_document.pk + 1000]))
    assert foreign.status_code == unknown.status_code == 404


@pytest.mark.parametrize("who", ["alice", "bob", "ada"])
def test_professionals_have_no_record_pages(cast, client, who):
    client.force_login(getattr(cast, who))
    for name in ["profile", "profile_pdf", "measures", "documents", "upload_document"]:
        assert client.get(reverse(f"health_record:{name}")).status_code == 404, name


def test_anonymous_is_sent_to_login(client, cast, paul_document):
    response = client.get(reverse("health_record:document_download", args=[paul_document.pk]))
    assert response.status_code == 302 and "/comptes/login/" in response["Location"]


def test_each_patient_gets_only_their_own_profile_pdf(cast, client, paul_document):
    Measure.objects.create(patient=cast.paul_patient, kind="weight", measured_on="2025-01-01", value=91)
    client.force_login(cast.pauline)
    text = pdf_text(client.get(reverse("health_record:profile_pdf")).content)
    assert "Pauline" in text and cast.pauline_patient.ins in text
    assert "Lambert".upper() not in text and cast.paul_patient.ins not in text and "91 kg" not in text
    page = client.get(reverse("health_record:documents")).content.decode()
    assert "Compte rendu" not in page


def test_a_patient_cannot_delete_another_patients_measure(cast, client):
    measure = Measure.objects.create(patient=cast.paul_patient, kind="weight", measured_on="2025-01-01", value=91)
    client.force_login(cast.pauline)
    assert client.post(reverse("health_record:delete_measure", args=[measure.pk])).status_code == 404
    assert Measure.objects.filter(pk=measure.pk).exists()


def test_directives_document_choices_are_the_patients_own(cast, client, paul_document):
    client.force_login(cast.pauline)
    page = client.get(reverse("health_record:edit_section", args=["directives"])).content.decode()
    assert "Compte rendu" not in page
    response = client.post(
        reverse("health_record:edit_section", args=["directives"]),
        {"advance_directives": "", "advance_directives_document": str(paul_document.pk)},
    )
    assert response.status_code == 200
    assert "Sélectionnez un choix valide" in response.content.decode()
