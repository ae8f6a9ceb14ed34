"""Names beside addresses: the patient's name with a patient address (RULES.md §3 "a pro sees
the address plus the first and last name"), and recipient suggestions from hosted boxes
(never the unlisted ones) and by INS, with the INS key checked as the user types.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q

from mailboxes.identifiers import ins_error, normalise_ins
from mailboxes.models import Mailbox
from mailboxes.patient_domain import is_patient_address
from patients.models import Patient


def names_for_addresses(addresses) -> dict[str, str]:
    """{patient address: "Prénom NOM"} in one query, for the patients among `addresses`."""
    ins = {a.split("@", 1)[0].upper(): a for a in addresses if a and is_patient_address(a)}
    if not ins:
        return {}
    return {ins[p.ins]: p.display_name for p in Patient.objects.filter(ins__in=list(ins))}


def suggest(term: str) -> dict:
    """Suggestions for what the user is typing: hosted boxes, or a patient address by INS."""
    term = (term or "").strip()
    result = {"suggestions": [], "ins_message": "", "ins_address": ""}
    if len(term) < 2:
        return result
    compact = normalise_ins(term.split("@", 1)[0]) if "@" not in term or is_patient_address(term) else ""
    if compact and (
        compact[:1].isdigit() and len(compact) >= 7 and compact.replace("A", "").replace("B", "").isdigit()
    ):
        error = ins_error(compact)
        if error:
            result["ins_message"] = error
        else:
            address = f"{compact}@{settings.PATIENT_DOMAIN}"
            result["ins_address"] = address
            result["suggestions"].append({"address": address, "label": names_for_addresses([address]).get(address, "")})
        return result
    boxes = (
        Mailbox.objects.filter(is_active=True, unlisted=False)
        .exclude(kind=Mailbox.Kind.PATIENT)
        .filter(
            Q(address__istartswith=term)
            | Q(display_name__icontains=term)
            | Q(owner__last_name__istartswith=term)
            | Q(owner__first_name__istartswith=term)
        )
        .order_by("address")
        .values("address", "display_name")[:8]
    )
    result["suggestions"] = [{"address": b["address"], "label": b["display_name"]} for b in boxes]
    return result
