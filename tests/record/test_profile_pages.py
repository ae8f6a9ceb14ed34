"""The profile pages: sections saved, dated and audited; measures with charts."""

import datetime

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from health_record.models import Measure, Profile
from tests.record.conftest import formset_data

pytestmark = pytest.mark.django_db


def test_profile_page_lists_every_section_and_the_pdf_action(cast, paul_client):
    page = paul_client.get(reverse("health_record:profile")).content.decode()
    assert "Télécharger mon profil médical (PDF)" in page
    for title in [
        "Antécédents",
        "Traitements en cours",
        "Allergies et intolérances",
        "Mode de vie",
        "Proches et personne de confiance",
        "Directives anticipées",
        "Vaccinations",
        "Données administratives",
        "Mes mesures",
    ]:
        assert title in page
    assert cast.paul_patient.ins in page
    assert reverse("health_record:documents") in page  # the nav


def test_saving_a_rows_section_dates_it_and_audits(cast, paul_client):
    data = formset_data(
        [
            {"drug": "Ramipril 5 mg", "dose": "1 le matin", "since": "2020-01-15"},
            {"drug": "", "dose": "", "since": ""},
        ]
    )
    response = paul_client.post(reverse("health_record:edit_section", args=["treatments"]), data)
    assert response.status_code == 302
    profile = Profile.objects.get(patient=cast.paul_patient)
    assert [t.drug for t in profile.treatments.all()] == ["Ramipril 5 mg"]
    assert profile.treatments_updated_at is not None
    assert profile.history_updated_at is None
    [event] = AuditEvent.objects.filter(action="profile.updated")
    assert event.detail == {"patient_id": cast.paul_patient.pk, "section": "treatments"}
    assert event.actor == cast.paul
    page = paul_client.get(reverse("health_record:profile")).content.decode()
    assert "Ramipril 5 mg" in page and "Mis à jour le" in page

    # Saving it again unchanged neither re-dates nor audits.
    treatment = profile.treatments.get()
    stamp = profile.treatments_updated_at
    again = formset_data(
        [{"id": str(treatment.pk), "drug": "Ramipril 5 mg", "dose": "1 le matin", "since": "2020-01-15"}], initial=1
    )
    paul_client.post(reverse("health_record:edit_section", args=["treatments"]), again)
    profile.refresh_from_db()
    assert profile.treatments_updated_at == stamp
    assert AuditEvent.objects.filter(action="profile.updated").count() == 1

    # Deleting the row.
    delete = formset_data([{"id": str(treatment.pk), "drug": "Ramipril 5 mg", "DELETE": "on"}], initial=1)
    paul_client.post(reverse("health_record:edit_section", args=["treatments"]), delete)
    assert not profile.treatments.exists()


def test_invalid_section_shows_errors_and_saves_nothing(cast, paul_client):
    data = formset_data([{"name": "Marie", "relation": "épouse", "phone": "pas un numéro"}])
    response = paul_client.post(reverse("health_record:edit_section", args=["contacts"]), data)
    assert response.status_code == 200
    assert "Numéro de téléphone invalide" in response.content.decode()
    assert not Profile.objects.get(patient=cast.paul_patient).contacts.exists()


def test_lifestyle_and_administrative_forms(cast, paul_client):
    paul_client.post(
        reverse("health_record:edit_section", args=["lifestyle"]),
        {
            "tobacco": "former",
            "tobacco_detail": "arrêt en 2010",
            "alcohol": "",
            "physical_activity": "marche",
            "diet": "",
        },
    )
    paul_client.post(
        reverse("health_record:edit_section", args=["administrative"]),
        {"gp_name": "Dr Durand", "gp_phone": "04 76 00 00 00", "insurance": "CPAM", "blood_group": "O-"},
    )
    profile = Profile.objects.get(patient=cast.paul_patient)
    assert profile.tobacco == "former" and profile.blood_group == "O-"
    assert profile.lifestyle_updated_at and profile.administrative_updated_at
    page = paul_client.get(reverse("health_record:profile")).content.decode()
    assert "ancien fumeur" in page and "O−" in page


def test_unknown_section_is_404(paul_client):
    assert paul_client.get(reverse("health_record:edit_section", args=["secret"])).status_code == 404


def test_measures_are_checked_and_charted(cast, paul_client):
    url = reverse("health_record:measures")
    response = paul_client.post(url, {"kind": "weight", "measured_on": "2025-01-10", "value": "700"})
    assert response.status_code == 200
    assert "700 kg n&#x27;est pas plausible" in response.content.decode()
    assert not Measure.objects.exists()

    for day, value in [("2025-01-10", "84,5"), ("2025-02-10", "83"), ("2025-03-10", "82,2")]:
        assert paul_client.post(url, {"kind": "weight", "measured_on": day, "value": value}).status_code == 302
    paul_client.post(url, {"kind": "height", "measured_on": "2025-01-10", "value": "176"})
    assert AuditEvent.objects.filter(action="profile.updated", detail__section="measures").count() == 4

    page = paul_client.get(reverse("health_record:profile")).content.decode()
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="measure-chart"' in page
    assert '<title id="chart-weight-title">poids (kg) au fil du temps</title>' in page
    assert "Dernière valeur : <strong>82,2 kg</strong>" in page
    assert "26,5 kg/m²" in page  # BMI from 82.2 kg and 176 cm
    assert "<td>10/02/2025</td><td>83 kg</td>" in page  # the text alternative table

    measure = Measure.objects.filter(kind="weight").first()
    paul_client.post(reverse("health_record:delete_measure", args=[measure.pk]))
    assert Measure.objects.filter(kind="weight").count() == 2


def test_upload_then_choose_it_as_advance_directives(cast, paul_client):
    from health_record.api import save_document

    doc = save_document(
        cast.paul_patient,
        data=b"%PDF-1.4\n",
        filename="da.pdf",
        title="Mes directives",
        date=datetime.date(2024, 5, 1),
        category="other",
        kind="health",
    )
    paul_client.post(
        reverse("health_record:edit_section", args=["directives"]),
        {"advance_directives": "Pas d'acharnement.", "advance_directives_document": str(doc.pk)},
    )
    profile = Profile.objects.get(patient=cast.paul_patient)
    assert profile.advance_directives_document == doc
    assert "Mes directives" in paul_client.get(reverse("health_record:profile")).content.decode()
