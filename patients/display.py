"""Display names across the patient domain (RULES.md §3 "Display names").

- The patient sees the professional's or structure's name taken from the display name before
  the address in `From:`, else the start of the address; never the raw address.
- A professional sees, for a patient's address, the address with the first and last names
  known to the space.
"""

from django.conf import settings

from mailboxes.display_text import display_name
from mailboxes.identifiers import normalise_ins
from mailboxes.patient_domain import is_patient_address
from patients.models import Patient
from patients.policy import system_address

SYSTEM_NAME = "Mon espace santé"


def sender_name(message) -> str:
    """What the patient reads as the sender of `message`."""
    address = (message.from_address or "").lower()
    if address == system_address():
        return SYSTEM_NAME
    name = display_name(message.from_name)  # never a name that looks like an address
    if name:
        return name
    return address.split("@", 1)[0] or "Expéditeur inconnu"


def box_name(mailbox) -> str:
    """A local box as the patient reads it: its display name, else the start of its address."""
    return mailbox.display_name or mailbox.local_part


def patient_label(address: str) -> str:
    """`Paul LAMBERT <158037512345678@patient.mssante.fr>` for a known patient's address,
    the address alone otherwise."""
    address = (address or "").strip().lower()
    if not is_patient_address(address):
        return address
    patient = (
        Patient.objects.filter(ins=normalise_ins(address.split("@", 1)[0]))
        .only("first_names", "usage_name", "birth_name")
        .first()
    )
    if patient is None:
        return address
    return f"{patient.display_name} <{address}>"


def patient_domain() -> str:
    return settings.PATIENT_DOMAIN
