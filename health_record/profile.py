"""The medical profile (RULES.md §3: history, current treatments, allergies, lifestyle, close
contacts, advance directives, vaccinations and the administrative data useful to care).

One place says what the sections are, updates a section (dating it, auditing it, warming the
PDF cache) and reads the whole profile as plain data for the pages, the PDF and its hash.
"""

import datetime
import logging
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent
from health_record.models import Measure, Profile, format_decimal
from mailboxes import queueing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    updated_field: str
    help: str


SECTIONS = [
    Section(
        "history",
        "Antécédents",
        "history_updated_at",
        "Vos maladies, opérations et les maladies de votre famille proche.",
    ),
    Section("treatments", "Traitements en cours", "treatments_updated_at", "Les médicaments que vous prenez."),
    Section(
        "allergies",
        "Allergies et intolérances",
        "allergies_updated_at",
        "Médicaments, aliments ou autres substances.",
    ),
    Section(
        "lifestyle",
        "Mode de vie",
        "lifestyle_updated_at",
        "Tabac, alcool, activité physique, alimentation.",
    ),
    Section(
        "contacts",
        "Proches et personne de confiance",
        "contacts_updated_at",
        "Les personnes à prévenir et votre personne de confiance.",
    ),
    Section(
        "directives",
        "Directives anticipées",
        "directives_updated_at",
        "Vos volontés sur votre fin de vie, écrites ou dans un document de votre dossier.",
    ),
    Section("vaccinations", "Vaccinations", "vaccinations_updated_at", "Vos vaccins et leurs dates."),
    Section(
        "administrative",
        "Données administratives",
        "administrative_updated_at",
        "Médecin traitant, assurance maladie, complémentaire santé, groupe sanguin.",
    ),
]
SECTIONS_BY_KEY = {s.key: s for s in SECTIONS}


def profile_for_patient(patient) -> Profile:
    profile, _created = Profile.objects.get_or_create(patient=patient)
    return profile


@transaction.atomic
def mark_section_updated(profile: Profile, section_key: str, *, actor=None) -> None:
    """Date the section, audit the change and queue a fresh PDF render after commit."""
    section = SECTIONS_BY_KEY[section_key]
    now = timezone.now()
    Profile.objects.filter(pk=profile.pk).update(**{section.updated_field: now})
    setattr(profile, section.updated_field, now)
    record(
        AuditEvent.Action.PROFILE_UPDATED,
        actor=actor,
        obj=profile,
        detail={"patient_id": profile.patient_id, "section": section_key},
    )
    log.info("profile %s section %s updated", profile.pk, section_key)
    queue_pdf_render(profile.patient_id)


def queue_pdf_render(patient_id: int) -> None:
    """Warm the PDF cache in the background after a change. Without a broker (tasks in process)
    this would render inside the request, so the PDF is then rendered on demand instead."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    queueing.enqueue_on_commit("health_record.tasks.render_profile_pdf_task", patient_id)


def _date(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        value = timezone.localtime(value).date()
    return value.strftime("%d/%m/%Y")


def latest_measures(patient) -> list[dict]:
    """For each kind with data: the latest value and the series over time (oldest first)."""
    by_kind: dict[str, list[Measure]] = {}
    for measure in Measure.objects.filter(patient=patient).order_by("measured_on", "id"):
        by_kind.setdefault(measure.kind, []).append(measure)
    rows = []
    for kind, label in Measure.Kind.choices:
        series = by_kind.get(kind)
        if not series:
            continue
        latest = series[-1]
        rows.append(
            {
                "kind": kind,
                "label": label,
                "unit": Measure.UNITS[kind],
                "latest": latest.display_value,
                "latest_date": _date(latest.measured_on),
                "first_date": _date(series[0].measured_on),
                "series": [
                    {
                        "date": m.measured_on.isoformat(),
                        "value": str(m.value),
                        "value2": str(m.value2) if m.value2 is not None else None,
                        "display": m.display_value,
                    }
                    for m in series
                ],
            }
        )
    return rows


def bmi(measure_rows: list[dict]) -> str:
    """Body-mass index from the latest weight and height, derived and never stored: computed in
    decimals and shown with one decimal, French style ("25,8"), on the pages and in the PDF."""
    latest = {row["kind"]: row["series"][-1]["value"] for row in measure_rows}
    weight, height = latest.get(Measure.Kind.WEIGHT), latest.get(Measure.Kind.HEIGHT)
    if not weight or not height:
        return ""
    metres = Decimal(height) / 100
    index = (Decimal(weight) / (metres * metres)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return format_decimal(index)


def profile_data(patient) -> dict:
    """The whole profile as plain, JSON-serialisable data (what the PDF shows and is hashed on)."""
    profile = profile_for_patient(patient)
    history = {kind: [] for kind, _label in profile.history.model.Kind.choices}
    for item in profile.history.all():
        history[item.kind].append({"description": item.description, "year": item.year or "", "note": item.note})
    measures = latest_measures(patient)
    directives_doc = profile.advance_directives_document
    return {
        "identity": {
            "ins": patient.ins,
            "ins_qualified": patient.ins_qualified,
            "birth_name": patient.birth_name,
            "usage_name": patient.usage_name,
            "first_names": patient.first_names,
            "birth_date": _date(patient.birth_date),
            "sex": patient.get_sex_display(),
        },
        "updated": {s.key: _date(getattr(profile, s.updated_field)) for s in SECTIONS},
        "history": history,
        "treatments": [{"drug": t.drug, "dose": t.dose, "since": _date(t.since)} for t in profile.treatments.all()],
        "allergies": [
            {"kind": a.get_kind_display(), "substance": a.substance, "reaction": a.reaction}
            for a in profile.allergies.all()
        ],
        "lifestyle": {
            "tobacco": profile.get_tobacco_display() if profile.tobacco else "",
            "tobacco_detail": profile.tobacco_detail,
            "alcohol": profile.get_alcohol_display() if profile.alcohol else "",
            "alcohol_detail": profile.alcohol_detail,
            "physical_activity": profile.physical_activity,
            "diet": profile.diet,
        },
        "contacts": [
            {"name": c.name, "relation": c.relation, "phone": c.phone, "trusted": c.is_trusted_person}
            for c in profile.contacts.all()
        ],
        "directives": {
            "text": profile.advance_directives,
            "document": (
                {"title": directives_doc.title, "date": _date(directives_doc.date)} if directives_doc else None
            ),
        },
        "vaccinations": [
            {"vaccine": v.vaccine, "date": _date(v.date), "note": v.note} for v in profile.vaccinations.all()
        ],
        "administrative": {
            "gp_name": profile.gp_name,
            "gp_phone": profile.gp_phone,
            "insurance": profile.insurance,
            "complementary_insurance": profile.complementary_insurance,
            "complementary_number": profile.complementary_number,
            "blood_group": profile.get_blood_group_display() if profile.blood_group else "",
        },
        "measures": measures,
        "bmi": bmi(measures),
    }
