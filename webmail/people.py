"""Names beside addresses: the patient's name with a patient address (RULES.md §3 "a pro sees
the address plus the first and last name"). Recipient suggestions come from the directory
(directory.views.completion), which never names a patient from a typed INS.
"""

from __future__ import annotations

from mailboxes.patient_domain import is_patient_address
from patients.models import Patient


def names_for_addresses(addresses) -> dict[str, str]:
    """{patient address: "Prénom NOM"} in one query, for the patients among `addresses`."""
    ins = {a.split("@", 1)[0].upper(): a for a in addresses if a and is_patient_address(a)}
    if not ins:
        return {}
    return {ins[p.ins]: p.display_name for p in Patient.objects.filter(ins__in=list(ins))}
