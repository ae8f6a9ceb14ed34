"""Named fields of message models (issue 9 item 2; RULES.md §4 pre-admission model).

A model's subject and body name fields as `{{ nom_usage }}`. A part between `[[` and `]]` is
optional: it is left out, brackets included, when one of its fields has no value (an optional
portal link, special instructions, a confirmation notice). Nothing else is interpreted: the text
is not a Django template, so a model can neither run code nor reach data it was not given.

Values come, by priority, from the line being sent (the CSV line or the convocation form), the
convocation itself, the patient's identity, the model's common values (`MessageModel.defaults`),
then the structure of the sending box (name, address, phone). A field used outside `[[ ]]`
without a value is *missing*; a name not in `FIELDS` is *unknown*. Both are reported by name
before anything is sent.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass

from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

FIELD_RE = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")
OPTIONAL_RE = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)


@dataclass(frozen=True)
class Field:
    label: str
    # Where the value usually comes from: "patient", "appointment", "model" (common value of the
    # model, overridable per line) or "structure".
    source: str
    help: str = ""


FIELDS: dict[str, Field] = {
    "civilite": Field(_("Civilité du patient (M. ou Mme)"), "patient"),
    "prenom": Field(_("Prénom du patient"), "patient"),
    "nom_usage": Field(_("Nom d'usage du patient"), "patient"),
    "nom_naissance": Field(_("Nom de naissance du patient"), "patient"),
    "date_rdv": Field(_("Date du rendez-vous"), "appointment", _("jj/mm/aaaa")),
    "heure_rdv": Field(_("Heure du rendez-vous"), "appointment", _("hh:mm")),
    "service": Field(_("Service"), "appointment"),
    "lieu": Field(_("Lieu du rendez-vous (bâtiment, étage, salle)"), "appointment"),
    "motif": Field(_("Motif de la venue"), "appointment"),
    "titre_professionnel": Field(_("Titre du professionnel (Dr, Pr…)"), "appointment"),
    "nom_professionnel": Field(_("Nom du professionnel"), "appointment"),
    "structure": Field(_("Nom de la structure"), "structure"),
    "adresse_structure": Field(_("Adresse de la structure"), "structure"),
    "documents_a_renvoyer": Field(_("Documents médicaux à renvoyer"), "model"),
    "pieces_administratives": Field(_("Pièces administratives à apporter"), "model"),
    "lien_portail": Field(_("Lien du portail patient"), "model"),
    "consignes": Field(_("Consignes particulières"), "model"),
    "suite_visite": Field(_("Ce qui suit la visite"), "model"),
    "telephone_aide": Field(_("Numéro d'aide"), "model"),
    "confirmation": Field(_("Demande de confirmation"), "model"),
    "lien_questionnaire": Field(_("Lien du questionnaire de satisfaction"), "model"),
    "signature": Field(_("Signature de la structure"), "model"),
}

# Fields a convocation always has (its date and time make the .ics invitation).
APPOINTMENT_REQUIRED = ("date_rdv", "heure_rdv")
# Fields of a CSV line that identify the patient rather than fill the text.
IDENTITY_COLUMN = "ins"


def fields_in(*texts: str) -> list[str]:
    """The field names used in `texts`, in order of first use, once each."""
    names: list[str] = []
    for text in texts:
        for name in FIELD_RE.findall(text or ""):
            if name not in names:
                names.append(name)
    return names


def required_fields(*texts: str) -> list[str]:
    """The known fields used outside any optional `[[ … ]]` part."""
    stripped = [OPTIONAL_RE.sub("", text or "") for text in texts]
    return [name for name in fields_in(*stripped) if name in FIELDS]


def unknown_fields(*texts: str) -> list[str]:
    return [name for name in fields_in(*texts) if name not in FIELDS]


def render(text: str, values: dict[str, str]) -> str:
    """`text` with its fields replaced. Optional parts whose fields lack a value go away; a
    missing required field stays visible as `{{ name }}` (callers check `missing` first)."""

    def optional(match: re.Match) -> str:
        inner = match.group(1)
        if all((values.get(name) or "").strip() for name in fields_in(inner)):
            return inner
        return ""

    def field(match: re.Match) -> str:
        value = values.get(match.group(1))
        return str(value) if value not in (None, "") else match.group(0)

    text = OPTIONAL_RE.sub(optional, text or "")
    text = FIELD_RE.sub(field, text)
    # An optional part left out may leave three blank lines in a row: keep paragraphs single.
    return re.sub(r"\n{3,}", "\n\n", text)


def missing(values: dict[str, str], *texts: str) -> list[str]:
    return [name for name in required_fields(*texts) if not str(values.get(name) or "").strip()]


# --- Where values come from ----------------------------------------------------------------


def patient_values(patient) -> dict[str, str]:
    civility = {"M": "M.", "F": "Mme"}.get(patient.sex, "")
    return {
        "civilite": civility,
        "prenom": patient.first_name,
        "nom_usage": (patient.usage_name or patient.birth_name).upper(),
        "nom_naissance": patient.birth_name.upper(),
    }


def structure_values(mailbox) -> dict[str, str]:
    structure = mailbox.structure
    values = {"signature": mailbox.signature or (mailbox.display_name or "")}
    if structure is not None:
        values.update(
            {
                "structure": structure.name,
                "adresse_structure": " ".join((structure.address or "").split()),
                "telephone_aide": structure.phone,
            }
        )
    return {k: v for k, v in values.items() if v}


def appointment_values(starts_at: datetime.datetime) -> dict[str, str]:
    local = timezone.localtime(starts_at)
    return {"date_rdv": long_date(local.date(), get_language()), "heure_rdv": time_format(local)}


@functools.lru_cache(maxsize=1024)
def long_date(day: datetime.date, language: str | None) -> str:
    """The long date ("mardi 3 mars 2026") in the active language (the cache key): a campaign's
    lines share a few days, and Django's `date_format` cost about 0.2 ms a line to check and
    again to send (bench/RESULTS.md issue 9)."""
    return date_format(day, "l j F Y")


def values_for(model, patient, line: dict[str, str] | None = None, starts_at=None) -> dict[str, str]:
    """Every value for one patient's message, by increasing priority."""
    values: dict[str, str] = {}
    values.update(structure_values(model.mailbox))
    values.update({k: str(v) for k, v in (model.defaults or {}).items() if str(v or "").strip()})
    values.setdefault("service", model.service)
    if patient is not None:
        values.update(patient_values(patient))
    values.update({k: str(v) for k, v in (line or {}).items() if str(v or "").strip() and k != IDENTITY_COLUMN})
    if starts_at is not None:
        values.update(appointment_values(starts_at))
    return values
