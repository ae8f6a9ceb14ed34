"""Campaigns: a list of patients sent with one model (issue 9 item 4).

The steps a secretary goes through, each a function here: `create_campaign` (upload: the CSV is
read and kept line by line), `apply_mapping` (columns → fields, remembered on the model) which
runs `validate` (a report line by line: INS key, unknown patient, closed space, missing field,
unreadable date, duplicate line), then `start`, `pause`, `resume`, `cancel`. Nothing leaves
before `start`. The sending itself is `automation.campaign_sending` (Celery, in batches).
"""

from __future__ import annotations

import datetime
import logging
import unicodedata
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.events import record
from audit.models import AuditEvent
from automation import convocations, csvfile, fields, sending
from automation.models import Campaign, CampaignLine
from mailboxes.identifiers import ins_error, normalise_ins
from patients.models import Patient
from patients.policy import space_decision

log = logging.getLogger(__name__)

APPOINTMENT_FIELDS = ["date_rdv", "heure_rdv", "lieu", "motif", "titre_professionnel", "nom_professionnel"]
# Column headings recognised without a remembered mapping (compared without accents or spaces).
SYNONYMS = {
    "ins": ["ins", "matriculeins", "nir", "matricule", "insnir"],
    "date_rdv": ["date", "daterdv", "datedurendezvous", "daterendezvous", "jour"],
    "heure_rdv": ["heure", "heurerdv", "heuredurendezvous", "horaire"],
    "lieu": ["lieu", "salle", "localisation"],
    "motif": ["motif", "acte", "examen"],
    "nom_professionnel": ["medecin", "professionnel", "nomprofessionnel", "praticien"],
    "titre_professionnel": ["titre", "titreprofessionnel"],
}


def _key(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode().lower()
    return "".join(c for c in plain if c.isalnum())


def mappable_fields(model, version) -> list[str]:
    """The fields a column may fill: the INS, the appointment's, those the text uses (the
    patient's identity always comes from their record, never from the list)."""
    names = ["ins"]
    if model.is_appointment:
        names += APPOINTMENT_FIELDS
    for name in fields.fields_in(version.subject, version.body):
        if name in fields.FIELDS and fields.FIELDS[name].source != "patient" and name not in names:
            names.append(name)
    return names


def required_columns(model) -> list[str]:
    return ["ins", *fields.APPOINTMENT_REQUIRED] if model.is_appointment else ["ins"]


def guess_mapping(campaign: Campaign) -> dict[str, str]:
    headers = campaign.headers
    by_key = {_key(h): h for h in headers}
    remembered = campaign.model.column_mapping or {}
    mapping = {}
    for name in mappable_fields(campaign.model, campaign.model.current):
        if remembered.get(name) in headers:
            mapping[name] = remembered[name]
            continue
        for candidate in [
            name,
            *SYNONYMS.get(name, []),
            str(fields.FIELDS[name].label) if name in fields.FIELDS else "",
        ]:
            if _key(candidate) in by_key:
                mapping[name] = by_key[_key(candidate)]
                break
    return mapping


# --- Upload ----------------------------------------------------------------------------------


@transaction.atomic
def create_campaign(model, *, filename: str, data: bytes, user) -> Campaign:
    """Read the file (raises `csvfile.CsvError`) and keep it; its lines are written by the
    check (`validate`), once the columns are known."""
    parsed = csvfile.read(data, max_lines=settings.AUTOMATION_CSV_MAX_LINES)
    campaign = Campaign.objects.create(
        model=model,
        mailbox=model.mailbox,
        created_by=user,
        filename=filename[:255],
        encoding=parsed.encoding,
        delimiter=parsed.delimiter,
        headers=parsed.headers,
        source=parsed.text,
        line_count=len(parsed.rows),
    )
    campaign.mapping = guess_mapping(campaign)
    campaign.save(update_fields=["mapping"])
    record(
        AuditEvent.Action.CAMPAIGN_CREATED,
        actor=user,
        obj=campaign,
        mailbox_id=campaign.mailbox_id,
        detail={"model": model.pk, "lines": len(parsed.rows)},
    )
    return campaign


# --- Mapping and validation ----------------------------------------------------------------


def mapping_errors(campaign: Campaign, mapping: dict[str, str]) -> list[str]:
    errors = []
    for name in required_columns(campaign.model):
        if not mapping.get(name):
            label = _("matricule INS") if name == "ins" else fields.FIELDS[name].label
            errors.append(_("Choisissez la colonne de « %(f)s ».") % {"f": label})
    unknown = [column for column in mapping.values() if column and column not in campaign.headers]
    if unknown:
        errors.append(_("Colonne absente du fichier : %(c)s.") % {"c": ", ".join(unknown)})
    return errors


def apply_mapping(campaign: Campaign, mapping: dict[str, str], user) -> ValidationReport:
    """Keep the mapping (on the campaign and, for the next list, on the model) and validate."""
    mapping = {k: v for k, v in mapping.items() if v}
    errors = mapping_errors(campaign, mapping)
    if errors:
        raise ValueError(" ".join(errors))
    if campaign.status != Campaign.Status.DRAFT:
        raise ValueError(_("Cette campagne est déjà lancée : sa liste ne change plus."))
    campaign.mapping = mapping
    campaign.save(update_fields=["mapping"])
    model = campaign.model
    model.column_mapping = {**(model.column_mapping or {}), **mapping}
    model.save(update_fields=["column_mapping", "updated_at"])
    return validate(campaign, user)


@dataclass
class LineProblem:
    number: int
    messages: list[str]


@dataclass
class ValidationReport:
    total: int = 0
    valid: int = 0
    problems: list[LineProblem] = field(default_factory=list)


def _line_values(campaign: Campaign, cells: list[str]) -> dict[str, str]:
    index = {h: i for i, h in enumerate(campaign.headers)}
    values = {}
    for name, column in campaign.mapping.items():
        position = index.get(column)
        if position is not None and position < len(cells):
            values[name] = cells[position]
    return values


def validate(campaign: Campaign, user=None) -> ValidationReport:
    """Check every line and write it with its verdict; the version checked is the one that will
    be sent."""
    version = campaign.model.current
    rows = csvfile.read_text(
        campaign.source, encoding=campaign.encoding, max_lines=settings.AUTOMATION_CSV_MAX_LINES
    ).rows
    lines = [
        CampaignLine(campaign=campaign, number=number, values=_line_values(campaign, cells)) for number, cells in rows
    ]
    wanted = {normalise_ins(line.values.get("ins", "")) for line in lines}
    patients = {p.ins: p for p in Patient.objects.filter(ins__in=[i for i in wanted if i]).select_related("mailbox")}
    seen: dict[int, int] = {}  # patient id → first line number
    report = ValidationReport(total=len(lines))
    for line in lines:
        line.patient, line.errors = _check_line(campaign, version, line, patients, seen)
        line.status = CampaignLine.Status.INVALID if line.errors else CampaignLine.Status.PENDING
        if line.errors:
            report.problems.append(LineProblem(line.number, [e["message"] for e in line.errors]))
        else:
            report.valid += 1
    with transaction.atomic():
        # Nothing points at the lines before the start: a new check writes them anew.
        campaign.lines.all().delete()
        CampaignLine.objects.bulk_create(lines, batch_size=2000)
        campaign.version = version
        campaign.validated_at = timezone.now()
        campaign.save(update_fields=["version", "validated_at"])
        record(
            AuditEvent.Action.CAMPAIGN_VALIDATED,
            actor=user,
            obj=campaign,
            mailbox_id=campaign.mailbox_id,
            detail={"version": version.number, "valid": report.valid, "invalid": len(report.problems)},
        )
    return report


def _error(code: str, message: str) -> dict:
    return {"code": code, "message": message}


APPOINTMENT_FIELDS = ("date_rdv", "heure_rdv")


def _check_line(campaign, version, line, patients, seen) -> tuple[Patient | None, list[dict]]:
    """Every independent fault of one line, each with its own reason (the secretary fixes them
    all in one upload): the patient's (INS, space, duplicate) and the appointment's (date, time,
    moment) are checked apart, then the fields the model needs and the line lacks."""
    values = line.values
    patient, errors = _check_patient(values, patients, seen)
    starts_at = None
    if campaign.model.is_appointment:
        starts_at, appointment_errors = _check_appointment(values)
        errors += appointment_errors
    if patient is not None:
        missing = fields.missing(
            fields.values_for(campaign.model, patient, values, starts_at), version.subject, version.body
        )
        if campaign.model.is_appointment and starts_at is None:  # the date or time fault is said
            missing = [name for name in missing if name not in APPOINTMENT_FIELDS]
        if missing:
            errors.append(_error("missing_field", sending.missing_message(missing)))
    if patient is not None and not errors:
        seen[patient.pk] = line.number
    return patient, errors


def _check_patient(values, patients, seen) -> tuple[Patient | None, list[dict]]:
    ins = normalise_ins(values.get("ins", ""))
    if not ins:
        return None, [_error("ins_missing", _("Le matricule INS manque sur cette ligne."))]
    problem = ins_error(ins)
    if problem:
        return None, [_error("ins_invalid", problem)]
    patient = patients.get(ins)
    if patient is None:
        return None, [_error("unknown_patient", _("Aucun patient n'est connu avec ce matricule INS."))]
    decision = space_decision(patient)
    if not decision.deliver:
        code = "closed_space" if decision.code == "space_closed" else decision.code
        return patient, [_error(code, decision.reason)]
    if patient.pk in seen:
        return patient, [
            _error("duplicate", _("Doublon : ce patient figure déjà ligne %(n)d.") % {"n": seen[patient.pk]})
        ]
    return patient, []


def _check_appointment(values) -> tuple[datetime.datetime | None, list[dict]]:
    """The appointment's moment, or each of its faults: the date and the time are read apart."""
    errors, day, moment = [], None, None
    try:
        day = convocations.parse_date(values.get("date_rdv", ""))
    except convocations.InvalidAppointment as exc:
        errors.append(_error("invalid_date", str(exc)))
    try:
        moment = convocations.parse_time(values.get("heure_rdv", ""))
    except convocations.InvalidAppointment as exc:
        errors.append(_error("invalid_time", str(exc)))
    if day is None or moment is None:
        return None, errors
    starts_at = convocations.combine(day, moment)
    try:
        convocations.check_upcoming(starts_at)
    except convocations.PastAppointment as exc:
        errors.append(_error("past_date", str(exc)))
    values["_starts_at"] = starts_at.isoformat()
    return starts_at, errors


def starts_at_of(line: CampaignLine) -> datetime.datetime | None:
    value = (line.values or {}).get("_starts_at")
    return datetime.datetime.fromisoformat(value) if value else None


# --- Controls ----------------------------------------------------------------------------------


def start(campaign: Campaign, user) -> int:
    """Launch the validated campaign; returns the number of lines to send."""
    from automation import campaign_sending

    if campaign.status != Campaign.Status.DRAFT or campaign.validated_at is None:
        raise ValueError(_("Vérifiez d'abord la liste : la campagne n'est pas prête à partir."))
    if campaign.model.current.pk != campaign.version_id:
        raise ValueError(_("Le modèle a changé depuis la vérification : vérifiez la liste à nouveau."))
    count = campaign.lines.filter(status=CampaignLine.Status.PENDING).count()
    if not count:
        raise ValueError(_("Aucune ligne valide : rien à envoyer."))
    sending.check_daily_limit(campaign.mailbox, count)
    with transaction.atomic():
        updated = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.DRAFT).update(
            status=Campaign.Status.SENDING, started_at=timezone.now()
        )
        if not updated:
            raise ValueError(_("Cette campagne est déjà lancée."))
        _audit(AuditEvent.Action.CAMPAIGN_STARTED, campaign, user, lines=count)
        transaction.on_commit(lambda: campaign_sending.enqueue(campaign.pk))
    return count


def pause(campaign: Campaign, user, reason: str = "") -> bool:
    updated = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SENDING).update(
        status=Campaign.Status.PAUSED, pause_reason=reason[:40]
    )
    if updated:
        _audit(AuditEvent.Action.CAMPAIGN_PAUSED, campaign, user, reason=reason)
    return bool(updated)


def resume(campaign: Campaign, user) -> bool:
    from automation import campaign_sending

    remaining = campaign.lines.filter(status=CampaignLine.Status.PENDING).count()
    sending.check_daily_limit(campaign.mailbox, min(remaining, settings.AUTOMATION_CAMPAIGN_CHUNK))
    with transaction.atomic():
        updated = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.PAUSED).update(
            status=Campaign.Status.SENDING, pause_reason="", last_progress_at=None
        )
        if updated:
            _audit(AuditEvent.Action.CAMPAIGN_RESUMED, campaign, user)
            transaction.on_commit(lambda: campaign_sending.enqueue(campaign.pk))
    return bool(updated)


def cancel(campaign: Campaign, user) -> int:
    """Stop for good: the lines not sent yet are cancelled (a chunk being sent finishes first:
    its lines are locked until it commits). Returns the number of lines cancelled."""
    with transaction.atomic():
        updated = Campaign.objects.filter(
            pk=campaign.pk, status__in=[Campaign.Status.DRAFT, Campaign.Status.SENDING, Campaign.Status.PAUSED]
        ).update(status=Campaign.Status.CANCELLED, finished_at=timezone.now())
        if not updated:
            return 0
        cancelled = campaign.lines.filter(status=CampaignLine.Status.PENDING).update(
            status=CampaignLine.Status.CANCELLED
        )
        _audit(AuditEvent.Action.CAMPAIGN_CANCELLED, campaign, user, lines=cancelled)
    return cancelled


def _audit(action, campaign, user, **detail):
    record(
        action,
        actor=user,
        actor_label="" if getattr(user, "is_authenticated", False) else "automation",
        obj=campaign,
        mailbox_id=campaign.mailbox_id,
        detail=detail,
    )


# --- Progress ----------------------------------------------------------------------------------


@dataclass
class Progress:
    total: int
    invalid: int
    pending: int
    sent: int
    returned: int
    failed: int
    cancelled: int

    @property
    def to_send(self) -> int:
        return self.total - self.invalid

    @property
    def done(self) -> int:
        return self.sent + self.returned + self.failed

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.to_send) if self.to_send else 100


def progress(campaign: Campaign) -> Progress:
    counts = dict(campaign.lines.values_list("status").annotate(n=Count("pk")).order_by())
    S = CampaignLine.Status
    return Progress(
        total=sum(counts.values()),
        invalid=counts.get(S.INVALID, 0),
        pending=counts.get(S.PENDING, 0) + counts.get(S.CLAIMED, 0),
        sent=counts.get(S.SENT, 0),
        returned=counts.get(S.RETURNED, 0),
        failed=counts.get(S.FAILED, 0),
        cancelled=counts.get(S.CANCELLED, 0),
    )
