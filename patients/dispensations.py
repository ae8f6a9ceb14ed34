"""Pharmacy dispensations (RULES.md §3, the one exception to "only professionals initiate"):
a pharmacy that dispensed a reimbursed prescription to a patient in the past year may be written
to first by that patient, on its organisational box.

The relation is recorded by the pharmacy's own import (its dispensing software exports who got
a reimbursed prescription and when) through `record_dispensation`, or by
`python manage.py record_dispensations FILE.csv` (columns `ins;pharmacy_address;date`).
"""

import datetime

from django.core.exceptions import ValidationError

from mailboxes.identifiers import normalise_ins
from mailboxes.models import Mailbox, Structure
from patients.models import Patient, PharmacyDispensation


def record_dispensation(*, ins: str, pharmacy_address: str, dispensed_on: datetime.date) -> PharmacyDispensation:
    patient = Patient.objects.filter(ins=normalise_ins(ins)).first()
    if patient is None:
        raise ValidationError("Aucun patient avec ce matricule INS.")
    box = Mailbox.objects.select_related("structure").filter(address=pharmacy_address.strip().lower()).first()
    if box is None or box.kind != Mailbox.Kind.ORGANISATIONAL:
        raise ValidationError("L'adresse doit être la BAL organisationnelle d'une officine hébergée ici.")
    if box.structure is None or box.structure.kind != Structure.Kind.PHARMACY:
        raise ValidationError("Cette BAL n'appartient pas à une officine.")
    if dispensed_on > datetime.date.today():
        raise ValidationError("La date de délivrance ne peut pas être dans le futur.")
    dispensation, _ = PharmacyDispensation.objects.get_or_create(
        patient=patient, pharmacy_mailbox=box, dispensed_on=dispensed_on
    )
    return dispensation
