"""The patient domain's sections of a provisioning file (RULES.md §3): patients (INS, civil
status, the state of their space, their account) and pharmacy dispensations. Registered with
`mailboxes.provisioning` when the app is ready; a space provisioned as closed is closed by
`patients.space.close_space`, like everywhere else."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from mailboxes import identifiers
from mailboxes.models import Mailbox, Structure
from mailboxes.provisioning import ItemFailed, Provisioner, Section, date, register_section, snapshot, text
from patients.enrolment import enrol_patient
from patients.models import Patient, PharmacyDispensation
from patients.space import close_space


def patients(p: Provisioner, where: str, item: dict) -> str:
    allowed = {
        "ins",
        "ins_qualified",
        "birth_name",
        "usage_name",
        "first_names",
        "birth_date",
        "sex",
        "notification_email",
        "space_state",
        "account",
    }
    before = len(p.report.errors)
    p.check_keys(where, item, allowed, {"ins", "birth_name", "first_names", "birth_date"})
    p.stop_if_errors(before)
    ins = identifiers.normalise_ins(text(item["ins"]))
    fields = {k: text(item[k]) for k in ("birth_name", "usage_name", "first_names", "sex") if k in item}
    if "notification_email" in item:
        fields["notification_email"] = text(item["notification_email"]).lower()
    if "ins_qualified" in item:
        if not isinstance(item["ins_qualified"], bool):
            p.error(f"{where}.ins_qualified", "true ou false attendu.")
        fields["ins_qualified"] = bool(item["ins_qualified"])
    birth_date = date(item["birth_date"])
    if birth_date is None:
        p.error(f"{where}.birth_date", "une date AAAA-MM-JJ est attendue.")
    fields["birth_date"] = birth_date
    existing = Patient.objects.filter(ins=ins).first()
    if "space_state" in item:
        state = text(item["space_state"])
        if state not in Patient.SpaceState.values:
            p.error(f"{where}.space_state", f"état inconnu (possibles : {', '.join(Patient.SpaceState.values)}).")
        # Closing goes through `close_space` (audited) once the patient is written.
        if state != Patient.SpaceState.CLOSED:
            fields["space_state"] = state
            fields["space_closed_at"] = None
    p.stop_if_errors(before)
    previous = snapshot(existing) if existing else None
    user, account_outcome = None, "unchanged"
    if "account" in item:
        last = fields.get("usage_name") or fields.get("birth_name", "")
        user, account_outcome = p.account(
            f"{where}.account",
            item["account"],
            existing_user=existing.user if existing else None,
            names={"first_name": fields.get("first_names", "").split(" ")[0], "last_name": last},
        )
    try:
        patient = enrol_patient(ins=ins, user=user, **fields)
    except ValidationError as exc:
        p.validation_error(where, exc)
        raise ItemFailed from None
    if text(item.get("space_state")) == Patient.SpaceState.CLOSED:
        close_space(patient, actor=p.actor)
    if existing is None:
        return "created"
    if snapshot(patient) != previous or account_outcome != "unchanged":
        return "updated"
    return "unchanged"


def dispensations(p: Provisioner, where: str, item: dict) -> str:
    before = len(p.report.errors)
    p.check_keys(
        where,
        item,
        {"patient", "pharmacy_mailbox", "dispensed_on"},
        {"patient", "pharmacy_mailbox", "dispensed_on"},
    )
    p.stop_if_errors(before)
    ins = identifiers.normalise_ins(text(item["patient"]))
    patient = Patient.objects.filter(ins=ins).first()
    if patient is None:
        p.error(f"{where}.patient", p.unknown("patient", "patients", ins, "matricule INS"))
    mailbox = p.mailbox_ref(f"{where}.pharmacy_mailbox", item["pharmacy_mailbox"])
    if mailbox is not None and (
        mailbox.kind != Mailbox.Kind.ORGANISATIONAL
        or mailbox.structure is None
        or mailbox.structure.kind != Structure.Kind.PHARMACY
    ):
        p.error(
            f"{where}.pharmacy_mailbox",
            "une délivrance se rattache à la BAL organisationnelle d'une officine (structure de type pharmacy).",
        )
    dispensed_on = date(item["dispensed_on"])
    if dispensed_on is None:
        p.error(f"{where}.dispensed_on", "une date AAAA-MM-JJ est attendue.")
    p.stop_if_errors(before)
    found = PharmacyDispensation.objects.filter(patient=patient, pharmacy_mailbox=mailbox, dispensed_on=dispensed_on)
    if found.exists():
        return "unchanged"
    obj = PharmacyDispensation(patient=patient, pharmacy_mailbox=mailbox, dispensed_on=dispensed_on)
    return p.upsert(where, obj, {})[1]


def register() -> None:
    register_section(Section("patients", 80, patients, keys=("ins",)))
    register_section(Section("dispensations", 90, dispensations))
