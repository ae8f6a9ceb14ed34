"""Creating a patient's space: the Patient row and its inbox `<INS>@<patient domain>`."""

from django.db import transaction

from mailboxes.identifiers import normalise_ins
from mailboxes.models import Mailbox
from patients.models import Patient


@transaction.atomic
def enrol_patient(*, ins: str, user=None, instance: Patient | None = None, **fields) -> Patient:
    """Create (or update) the patient with this INS and make sure their inbox exists.
    `instance` is the Patient object to write (the admin's form object), else the one of this INS.

    Validation is complete before anything is written: a wrong INS key raises ValidationError.
    """
    ins = normalise_ins(ins)
    patient = instance or Patient.objects.filter(ins=ins).first() or Patient(ins=ins)
    patient.ins = ins
    for name, value in fields.items():
        setattr(patient, name, value)
    if user is not None:
        patient.user = user
    patient.full_clean(exclude=["mailbox", "user"])
    if patient.mailbox_id is None:
        mailbox = Mailbox(kind=Mailbox.Kind.PATIENT, address=patient.address)
        mailbox.full_clean()
        mailbox.save()
        patient.mailbox = mailbox
    patient.mailbox.display_name = patient.display_name
    patient.mailbox.save(update_fields=["display_name"])
    patient.save()
    return patient
