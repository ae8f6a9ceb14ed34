"""A complete medical profile, for the tests and the PDF benchmark."""

import datetime
from decimal import Decimal

from django.utils import timezone

from health_record.models import Allergy, Contact, HistoryItem, Measure, Treatment, Vaccination
from health_record.profile import SECTIONS, profile_for_patient


def fill_profile(patient, *, measures_per_kind: int = 6):
    profile = profile_for_patient(patient)
    HistoryItem.objects.bulk_create(
        [
            HistoryItem(profile=profile, kind="medical", description="Hypertension artérielle", year=2015),
            HistoryItem(
                profile=profile, kind="medical", description="Diabète de type 2", year=2019, note="sous metformine"
            ),
            HistoryItem(profile=profile, kind="surgical", description="Appendicectomie", year=1975),
            HistoryItem(profile=profile, kind="surgical", description="Prothèse de hanche droite", year=2021),
            HistoryItem(profile=profile, kind="family", description="Père : infarctus du myocarde à 62 ans"),
        ]
    )
    Treatment.objects.bulk_create(
        [
            Treatment(
                profile=profile, drug="Ramipril 5 mg", dose="1 comprimé le matin", since=datetime.date(2015, 6, 1)
            ),
            Treatment(
                profile=profile,
                drug="Metformine 850 mg",
                dose="1 comprimé matin et soir",
                since=datetime.date(2019, 2, 1),
            ),
            Treatment(profile=profile, drug="Atorvastatine 20 mg", dose="1 comprimé le soir"),
        ]
    )
    Allergy.objects.bulk_create(
        [
            Allergy(profile=profile, kind="allergy", substance="Pénicilline", reaction="urticaire géante"),
            Allergy(profile=profile, kind="intolerance", substance="Lactose", reaction="troubles digestifs"),
        ]
    )
    Contact.objects.bulk_create(
        [
            Contact(
                profile=profile, name="Marie Lambert", relation="épouse", phone="06 12 34 56 78", is_trusted_person=True
            ),
            Contact(profile=profile, name="Julien Lambert", relation="fils", phone="07 98 76 54 32"),
        ]
    )
    Vaccination.objects.bulk_create(
        [
            Vaccination(profile=profile, vaccine="Grippe saisonnière", date=datetime.date(2025, 10, 15)),
            Vaccination(profile=profile, vaccine="Covid-19", date=datetime.date(2024, 11, 2), note="rappel"),
            Vaccination(profile=profile, vaccine="Diphtérie, tétanos, polio", date=datetime.date(2023, 3, 1)),
        ]
    )
    profile.tobacco = "former"
    profile.tobacco_detail = "arrêt en 2010, 20 paquets-années"
    profile.alcohol = "occasional"
    profile.physical_activity = "marche 30 minutes par jour"
    profile.diet = "pauvre en sel et en sucres rapides"
    profile.advance_directives = (
        "Je ne souhaite pas d'acharnement thérapeutique. Ma personne de confiance connaît mes volontés."
    )
    profile.gp_name = "Dr Charlie Durand"
    profile.gp_phone = "04 76 00 00 00"
    profile.insurance = "CPAM de l'Isère"
    profile.complementary_insurance = "Mutuelle des Trois Pics"
    profile.complementary_number = "MTP-123456"
    profile.blood_group = "A+"
    now = timezone.now()
    for section in SECTIONS:
        setattr(profile, section.updated_field, now)
    profile.save()

    start = datetime.date(2025, 1, 10)
    rows = []
    for i in range(measures_per_kind):
        day = start + datetime.timedelta(days=30 * i)
        rows += [
            Measure(patient=patient, kind="weight", measured_on=day, value=Decimal("84.5") - Decimal(i) / 2),
            Measure(patient=patient, kind="bp", measured_on=day, value=145 - 2 * i, value2=92 - i),
            Measure(patient=patient, kind="glucose", measured_on=day, value=Decimal("1.32") - Decimal(i) / 50),
            Measure(patient=patient, kind="heart_rate", measured_on=day, value=78 - i),
        ]
    rows.append(Measure(patient=patient, kind="height", measured_on=start, value=176))
    Measure.objects.bulk_create(rows)
    return profile
