"""The profile and measure forms refuse implausible values with clear French messages."""

import datetime

import pytest

from health_record.forms import ContactsFormSet, HistoryItemForm, MeasureForm, TreatmentForm
from health_record.profile import profile_for_patient
from tests.record.conftest import formset_data

TODAY = datetime.date.today().isoformat()


def measure(**data):
    form = MeasureForm(data={"measured_on": TODAY, **data})
    form.is_valid()
    return form


def test_a_weight_of_700_kg_is_refused_with_the_range():
    form = measure(kind="weight", value="700")
    assert not form.is_valid()
    message = form.errors["value"][0]
    assert "700 kg" in message and "pas plausible" in message and "entre 1 et 350 kg" in message


def test_a_plausible_weight_is_accepted():
    form = measure(kind="weight", value="72,5")
    assert form.is_valid(), form.errors
    assert str(form.cleaned_data["value"]) == "72.5"
    assert measure(kind="weight", value="72.5").is_valid()


def test_blood_pressure_needs_a_lower_diastolic_value():
    assert "Indiquez aussi la tension diastolique" in measure(kind="bp", value="130").errors["value2"][0]
    assert "inférieure à la tension systolique" in measure(kind="bp", value="80", value2="90").errors["value2"][0]
    assert "pas plausible" in measure(kind="bp", value="130", value2="5").errors["value2"][0]
    assert measure(kind="bp", value="130", value2="85").is_valid()


def test_blood_pressure_written_in_cmhg_gets_a_hint():
    form = measure(kind="bp", value="12", value2="8")
    assert "120 et non 12" in form.errors["value"][0]


def test_glucose_in_mg_per_dl_gets_a_hint():
    form = measure(kind="glucose", value="105")
    assert "g/L" in form.errors["value"][0] and "mg/dL" in form.errors["value"][0]


def test_heart_rate_and_height_ranges():
    assert "pas plausible" in measure(kind="heart_rate", value="400").errors["value"][0]
    assert "pas plausible" in measure(kind="height", value="17").errors["value"][0]
    assert measure(kind="height", value="176").is_valid()


def test_a_measure_in_the_future_is_refused():
    tomorrow = (datetime.date.today() + datetime.timedelta(days=2)).isoformat()
    form = MeasureForm(data={"kind": "weight", "value": "70", "measured_on": tomorrow})
    assert not form.is_valid()
    assert "ne peut pas être dans le futur" in form.errors["measured_on"][0]


def test_history_year_and_treatment_start_are_checked():
    form = HistoryItemForm(data={"kind": "medical", "description": "Asthme", "year": "1850"})
    assert not form.is_valid() and "entre 1900 et" in form.errors["year"][0]
    future = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
    form = TreatmentForm(data={"drug": "Ventoline", "since": future})
    assert not form.is_valid() and "futur" in form.errors["since"][0]


@pytest.mark.django_db
def test_contacts_phone_and_single_trusted_person(cast):
    profile = profile_for_patient(cast.paul_patient)
    data = formset_data(
        [
            {"name": "Marie", "phone": "06 12 34 56 78", "is_trusted_person": "on"},
            {"name": "Julien", "phone": "07 98 76 54 32", "is_trusted_person": "on"},
        ]
    )
    formset = ContactsFormSet(data, instance=profile, prefix="rows")
    assert not formset.is_valid()
    assert "une seule personne de confiance" in formset.non_form_errors()[0]

    data = formset_data([{"name": "Marie", "phone": "appelez-moi"}])
    formset = ContactsFormSet(data, instance=profile, prefix="rows")
    assert not formset.is_valid()
    assert "Numéro de téléphone invalide" in formset.forms[0].errors["phone"][0]
