"""Provisioning: loading structures, domains, people and mailboxes from a file, and the few
administrative actions the admin and the commands share.

RULES.md §1–2 (who may hold which box, identified by FINESS/SIRET/SIREN, RPPS/ADELI, INS).
`manage.py provision FILE` and `manage.py seed_demo` call `provision()`; the Django admin calls
`deactivate_mailboxes()` and `reactivate_mailboxes()` (closing a patient's space is
`patients.space.close_space()`).

How "validate everything before writing anything" is kept: the whole file is applied inside one
transaction, each item in its own savepoint after `full_clean()` on the unsaved instance; items
refer to earlier items of the file or to rows already in the database. Every error is collected
with its place in the file (`professionals[2].rpps: …`), and if there is any, or on a dry run,
the transaction is rolled back: nothing is written, no e-mail leaves. Provisioning never
deletes: what the file does not name is left as it is.
"""

from __future__ import annotations

import datetime
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent
from mailboxes import identifiers
from mailboxes.models import Domain, Mailbox, Membership, Professional, Structure, TrustedDomain, domain_error

SECTIONS = (
    "structures",
    "domains",
    "trusted_domains",
    "accounts",
    "professionals",
    "mailboxes",
    "memberships",
    "patients",
    "dispensations",
)

KIND_ALIASES = {
    "nominative": Mailbox.Kind.NOMINATIVE,
    "per": Mailbox.Kind.NOMINATIVE,
    "organisational": Mailbox.Kind.ORGANISATIONAL,
    "organisationnelle": Mailbox.Kind.ORGANISATIONAL,
    "org": Mailbox.Kind.ORGANISATIONAL,
    "applicative": Mailbox.Kind.APPLICATIVE,
    "app": Mailbox.Kind.APPLICATIVE,
}

NUMBER_FIELDS = {"finess", "siret", "siren", "rpps", "adeli", "ins"}

ACCOUNT_KEYS = {"username", "email", "password", "send_password_reset"}


class ProvisioningError(Exception):
    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class Report:
    counts: dict[str, Counter] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False

    def add(self, section: str, outcome: str) -> None:
        self.counts.setdefault(section, Counter())[outcome] += 1

    def summary_lines(self) -> list[str]:
        lines = []
        for section in SECTIONS:
            c = self.counts.get(section)
            if c:
                lines.append(
                    f"{section}: {c['created']} créé(s), {c['updated']} modifié(s), {c['unchanged']} inchangé(s)"
                )
        return lines


class _ItemFailed(Exception):
    """Raised inside an item's savepoint once its errors are recorded, to roll the item back."""


# --- Reading the file ---------------------------------------------------------------------------


def load_file(path: str | Path) -> dict:
    """Read a provisioning file: JSON when it ends in `.json`, YAML otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProvisioningError([f"{path}: fichier illisible ({exc.strerror})."]) from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ProvisioningError([f"{path}, ligne {exc.lineno}, colonne {exc.colno} : JSON invalide ({exc.msg})."])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", ligne {mark.line + 1}, colonne {mark.column + 1}" if mark else ""
        raise ProvisioningError([f"{path}{where} : YAML invalide ({getattr(exc, 'problem', exc)})."])
    return data if data is not None else {}


def provision_file(path: str | Path, *, dry_run: bool = False, actor=None) -> Report:
    return provision(load_file(path), dry_run=dry_run, actor=actor)


# --- The provisioning run ---------------------------------------------------------------------


def provision(data, *, dry_run: bool = False, actor=None) -> Report:
    """Apply `data` (the parsed file). Raises ProvisioningError listing every error; then nothing
    is written. Returns the report (counts per section) otherwise."""
    report = Report(dry_run=dry_run)
    with transaction.atomic():
        _Provisioner(data, report).run()
        if not report.errors and not dry_run:
            record(
                AuditEvent.Action.PROVISIONED,
                actor=actor,
                actor_label="" if actor else "provision",
                object_type="provisioning",
                detail={section: dict(c) for section, c in report.counts.items()},
            )
        if report.errors or dry_run:
            transaction.set_rollback(True)
    if report.errors:
        raise ProvisioningError(report.errors)
    return report


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    return str(value).strip()


class _Provisioner:
    def __init__(self, data, report: Report):
        self.data = data
        self.report = report
        self.failed: dict[str, set[str]] = {s: set() for s in SECTIONS}
        self.key = ""  # the identifying key of the item being applied, for later references
        self.deferred: list[str] = []
        self.item = None

    # -- error helpers
    def error(self, where: str, message: str) -> None:
        self.report.errors.append(f"{where}: {message}")

    def validation_error(self, where: str, exc: ValidationError, rename: dict | None = None) -> None:
        rename = rename or {}
        if hasattr(exc, "error_dict"):
            for name, messages in exc.message_dict.items():
                place = where if name == NON_FIELD_ERRORS else f"{where}.{rename.get(name, name)}"
                raw = self.item.get(rename.get(name, name)) if isinstance(self.item, dict) else None
                if name in NUMBER_FIELDS and isinstance(raw, int) and not isinstance(raw, bool):
                    # An unquoted YAML number loses its leading zeros (and 0-prefixed ones read as octal).
                    messages = [f"{m} (écrivez ce numéro entre guillemets dans le fichier)" for m in messages]
                for message in messages:
                    self.error(place, message)
        else:
            for message in exc.messages:
                self.error(where, message)

    def run(self) -> None:
        if not isinstance(self.data, dict):
            self.error("(fichier)", "le fichier doit contenir un dictionnaire de sections (structures, domains, …).")
            return
        for name in self.data:
            if name not in SECTIONS:
                self.error(name, f"section inconnue (sections possibles : {', '.join(SECTIONS)}).")
        for section in SECTIONS:
            items = self.data.get(section) or []
            if not isinstance(items, list):
                self.error(section, "une liste d'éléments est attendue.")
                continue
            order = list(enumerate(items))
            if section == "mailboxes":
                # Applicative boxes refer to their organisational return box: create those first.
                order.sort(key=lambda pair: _kind_of(pair[1]) == Mailbox.Kind.APPLICATIVE)
            handler = getattr(self, f"_{section}")
            for index, item in order:
                self._item(section, index, item, handler)

    def _item(self, section, index, item, handler) -> None:
        where = f"{section}[{index}]"
        before = len(self.report.errors)
        self.key = _item_key(section, item)
        self.item = item
        self.deferred = []  # unknown keys: reported, but the item is still checked in full
        outcome = None
        try:
            with transaction.atomic():
                if not isinstance(item, dict):
                    self.error(where, "un dictionnaire de champs est attendu.")
                    raise _ItemFailed
                outcome = handler(where, item)
                if len(self.report.errors) > before or self.deferred:
                    raise _ItemFailed
        except _ItemFailed:
            outcome = None
        except ValidationError as exc:
            self.validation_error(where, exc)
            outcome = None
        except IntegrityError as exc:
            self.error(where, f"conflit avec une donnée existante ({exc.__class__.__name__}).")
            outcome = None
        self.report.errors.extend(self.deferred)
        if outcome is None:
            self.failed[section].add(self.key)
        else:
            self.report.add(section, outcome)

    def check_keys(self, where: str, item: dict, allowed: set[str], required: set[str]) -> None:
        for key in item:
            if key not in allowed:
                self.deferred.append(f"{where}.{key}: champ inconnu (champs possibles : {', '.join(sorted(allowed))}).")
        for key in sorted(required):
            if _text(item.get(key)) == "":
                self.error(f"{where}.{key}", "ce champ est obligatoire.")

    def stop_if_errors(self, before: int) -> None:
        if len(self.report.errors) > before:
            raise _ItemFailed

    # -- generic upsert: set only the keys the file gives, full_clean, save if anything changed
    def upsert(self, where, obj, values: dict, *, exclude=(), rename=None) -> tuple[object, str]:
        creating = obj._state.adding
        snapshot = _snapshot(obj)
        for name, value in values.items():
            setattr(obj, name, value)
        try:
            obj.full_clean(exclude=list(exclude))
        except ValidationError as exc:
            self.validation_error(where, exc, rename)
            raise _ItemFailed from None
        if creating:
            obj.save()
            return obj, "created"
        if _snapshot(obj) != snapshot:
            obj.save()
            return obj, "updated"
        return obj, "unchanged"

    # -- references
    def structure_ref(self, where: str, value) -> Structure | None:
        ref = identifiers.normalise_number(_text(value))
        if not ref:
            return None
        found = Structure.objects.filter(Q(finess=ref) | Q(siret=ref) | Q(siren=ref)).first()
        if found is None:
            self.error(where, self._unknown("structure", "structures", ref, "FINESS, SIRET ou SIREN"))
        return found

    def professional_ref(self, where: str, value) -> Professional | None:
        ref = _text(value)
        if not ref:
            return None
        number = identifiers.normalise_number(ref)
        found = (
            Professional.objects.filter(Q(rpps=number) | Q(adeli=number)).first() if number else None
        ) or Professional.objects.filter(local_identifier=ref).first()
        if found is None:
            self.error(where, self._unknown("professionnel", "professionals", ref, "RPPS, ADELI ou identifiant local"))
        return found

    def mailbox_ref(self, where: str, value) -> Mailbox | None:
        ref = _text(value).lower()
        if not ref:
            return None
        found = Mailbox.objects.filter(address=ref).first()
        if found is None:
            self.error(where, self._unknown("BAL", "mailboxes", ref, "adresse"))
        return found

    def user_ref(self, where: str, value):
        ref = _text(value)
        found = get_user_model().objects.filter(username=ref).first() if ref else None
        if found is None:
            self.error(where, self._unknown("compte", "accounts", ref, "identifiant de connexion"))
        return found

    def _unknown(self, what: str, section: str, ref: str, by: str) -> str:
        if ref in self.failed.get(section, ()):
            return f"{what} « {ref} » en erreur plus haut dans le fichier (section {section})."
        return f"{what} « {ref} » introuvable ({by}), ni dans le fichier ni en base."

    # -- accounts (shared by accounts, professionals and patients)
    def account(self, where: str, spec, existing_user=None, names=None, extra=None):
        """Create or update a login account; returns (user, outcome)."""
        User = get_user_model()
        if not isinstance(spec, dict):
            self.error(where, "un dictionnaire (username, email, password) est attendu.")
            raise _ItemFailed
        before = len(self.report.errors)
        self.check_keys(where, spec, ACCOUNT_KEYS, {"username"})
        self.stop_if_errors(before)
        username = _text(spec["username"])
        email = _text(spec.get("email")).lower()
        user = existing_user or User.objects.filter(username=username).first()
        creating = user is None
        if creating:
            user = User(username=username)
        if email and User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
            self.error(f"{where}.email", f"l'adresse « {email} » est déjà celle d'un autre compte.")
        if username != user.username and User.objects.filter(username=username).exclude(pk=user.pk).exists():
            self.error(f"{where}.username", f"l'identifiant « {username} » est déjà pris.")
        values = {"username": username, "email": email, **(names or {}), **(extra or {})}
        password = spec.get("password")
        snapshot = _snapshot(user)
        for name, value in values.items():
            setattr(user, name, value)
        try:
            user.full_clean(exclude=["password"])
        except ValidationError as exc:
            self.validation_error(where, exc)
        if creating and password:
            try:
                validate_password(str(password), user)
            except ValidationError as exc:
                for message in exc.messages:
                    self.error(f"{where}.password", message)
        self.stop_if_errors(before)
        if not creating:
            if _snapshot(user) == snapshot:
                return user, "unchanged"
            user.save()
            return user, "updated"
        # The initial password is applied when the account is created, never afterwards.
        if password:
            user.set_password(str(password))
        else:
            user.set_unusable_password()
        user.save()
        if not password and email and spec.get("send_password_reset", True):
            transaction.on_commit(lambda: send_initial_password_mail(user.pk), robust=True)
        return user, "created"

    # -- sections
    def _structures(self, where, item):
        allowed = {"name", "kind", "finess", "siret", "siren", "address", "phone"}
        before = len(self.report.errors)
        self.check_keys(where, item, allowed, {"name"})
        self.stop_if_errors(before)
        values = {k: _text(item[k]) for k in allowed if k in item}
        for number in ("finess", "siret", "siren"):
            if number in values:
                values[number] = identifiers.normalise_number(values[number])
        lookup = Q(pk__in=[])
        for number in ("finess", "siret", "siren"):
            if values.get(number):
                lookup |= Q(**{number: values[number]})
        obj = Structure.objects.filter(lookup).first() or Structure()
        return self.upsert(where, obj, values)[1]

    def _domains(self, where, item):
        before = len(self.report.errors)
        self.check_keys(where, item, {"name", "structure"}, {"name", "structure"})
        self.stop_if_errors(before)
        name = _text(item["name"]).lower()
        structure = self.structure_ref(f"{where}.structure", item["structure"])
        self.stop_if_errors(before)
        obj = Domain.objects.filter(name=name).first() or Domain()
        return self.upsert(where, obj, {"name": name, "structure": structure})[1]

    def _trusted_domains(self, where, item):
        before = len(self.report.errors)
        self.check_keys(where, item, {"name", "source"}, {"name"})
        self.stop_if_errors(before)
        name = _text(item["name"]).lower()
        error = domain_error(name)
        if error:
            self.error(f"{where}.name", error)
        if Domain.objects.filter(name=name).exists():
            self.error(f"{where}.name", f"« {name} » est un domaine hébergé ici, pas un domaine d'un autre opérateur.")
        self.stop_if_errors(before)
        obj = TrustedDomain.objects.filter(name=name).first() or TrustedDomain()
        values = {"name": name}
        if "source" in item:
            values["source"] = _text(item["source"])
        return self.upsert(where, obj, values)[1]

    def _accounts(self, where, item):
        extra_keys = {"first_name", "last_name", "is_staff", "is_superuser", "is_active"}
        extra = {k: item[k] for k in extra_keys if k in item}
        for flag in ("is_staff", "is_superuser", "is_active"):
            if flag in extra and not isinstance(extra[flag], bool):
                self.error(f"{where}.{flag}", "true ou false attendu.")
                raise _ItemFailed
        for name in ("first_name", "last_name"):
            if name in extra:
                extra[name] = _text(extra[name])
        spec = {k: v for k, v in item.items() if k not in extra_keys}
        # Unknown keys are reported against the full list of what an account accepts.
        for key in spec:
            if key not in ACCOUNT_KEYS:
                self.error(
                    f"{where}.{key}",
                    f"champ inconnu (champs possibles : {', '.join(sorted(ACCOUNT_KEYS | extra_keys))}).",
                )
                raise _ItemFailed
        return self.account(where, spec, extra=extra)[1]

    def _professionals(self, where, item):
        allowed = {
            "rpps",
            "adeli",
            "local_identifier",
            "civility",
            "first_name",
            "last_name",
            "profession",
            "specialty",
            "structure",
            "dematerialisation",
            "account",
        }
        before = len(self.report.errors)
        self.check_keys(where, item, allowed, {"first_name", "last_name", "profession"})
        self.stop_if_errors(before)
        values = {k: _text(item[k]) for k in allowed - {"structure", "account", "dematerialisation"} if k in item}
        for number in ("rpps", "adeli"):
            if number in values:
                values[number] = identifiers.normalise_number(values[number])
        if "dematerialisation" in item:
            values["dematerialisation"] = bool(item["dematerialisation"])
        structure = self.structure_ref(f"{where}.structure", item.get("structure"))
        if "structure" in item:
            values["structure"] = structure
        self.stop_if_errors(before)
        if values.get("rpps"):
            obj = Professional.objects.filter(rpps=values["rpps"]).first()
        elif values.get("adeli"):
            obj = Professional.objects.filter(adeli=values["adeli"]).first()
        elif values.get("local_identifier"):
            obj = Professional.objects.filter(local_identifier=values["local_identifier"], structure=structure).first()
        else:
            obj = None
        obj = obj or Professional()
        account_outcome = "unchanged"
        if "account" in item:
            user, account_outcome = self.account(
                f"{where}.account",
                item["account"],
                existing_user=obj.user if obj.pk else None,
                names={"first_name": values["first_name"], "last_name": values["last_name"]},
            )
            values["user"] = user
        _, outcome = self.upsert(where, obj, values, exclude=["user"])
        return "updated" if outcome == "unchanged" and account_outcome != "unchanged" else outcome

    def _mailboxes(self, where, item):
        allowed = {
            "address",
            "kind",
            "display_name",
            "owner",
            "responsible",
            "return_mailbox",
            "quota_bytes",
            "max_message_bytes",
            "signature",
            "unlisted",
            "is_preferred",
            "is_active",
        }
        before = len(self.report.errors)
        self.check_keys(where, item, allowed, {"address", "kind"})
        self.stop_if_errors(before)
        address = _text(item["address"]).lower()
        kind = _kind_of(item)
        if kind is None:
            self.error(f"{where}.kind", "type inconnu : nominative, organisational ou applicative.")
        values = {"address": address, "kind": kind}
        for name in ("display_name", "signature"):
            if name in item:
                values[name] = _text(item[name])
        for name in ("quota_bytes", "max_message_bytes"):
            if name in item:
                if not isinstance(item[name], int) or isinstance(item[name], bool) or item[name] <= 0:
                    self.error(f"{where}.{name}", "un nombre d'octets entier et positif est attendu.")
                else:
                    values[name] = item[name]
        for name in ("unlisted", "is_preferred", "is_active"):
            if name in item:
                if not isinstance(item[name], bool):
                    self.error(f"{where}.{name}", "true ou false attendu.")
                else:
                    values[name] = item[name]
        for name in ("owner", "responsible"):
            if name in item:
                values[name] = self.professional_ref(f"{where}.{name}", item[name])
        if "return_mailbox" in item:
            values["return_mailbox"] = self.mailbox_ref(f"{where}.return_mailbox", item["return_mailbox"])
        self.stop_if_errors(before)
        obj = Mailbox.objects.filter(address=address).first() or Mailbox()
        if obj.pk and obj.kind == Mailbox.Kind.PATIENT:
            self.error(f"{where}.address", "c'est une BAL patient : elle se crée avec le patient (section patients).")
            raise _ItemFailed
        return self.upsert(where, obj, values)[1]

    def _memberships(self, where, item):
        before = len(self.report.errors)
        self.check_keys(where, item, {"mailbox", "user", "role"}, {"mailbox", "user"})
        self.stop_if_errors(before)
        mailbox = self.mailbox_ref(f"{where}.mailbox", item["mailbox"])
        user = self.user_ref(f"{where}.user", item["user"])
        self.stop_if_errors(before)
        obj = Membership.objects.filter(mailbox=mailbox, user=user).first() or Membership(mailbox=mailbox, user=user)
        values = {"role": _text(item["role"])} if "role" in item else {}
        return self.upsert(where, obj, values)[1]

    def _patients(self, where, item):
        from patients.enrolment import enrol_patient
        from patients.models import Patient

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
        before = len(self.report.errors)
        self.check_keys(where, item, allowed, {"ins", "birth_name", "first_names", "birth_date"})
        self.stop_if_errors(before)
        ins = identifiers.normalise_ins(_text(item["ins"]))
        fields = {k: _text(item[k]) for k in ("birth_name", "usage_name", "first_names", "sex") if k in item}
        if "notification_email" in item:
            fields["notification_email"] = _text(item["notification_email"]).lower()
        if "ins_qualified" in item:
            if not isinstance(item["ins_qualified"], bool):
                self.error(f"{where}.ins_qualified", "true ou false attendu.")
            fields["ins_qualified"] = bool(item["ins_qualified"])
        birth_date = _date(item["birth_date"])
        if birth_date is None:
            self.error(f"{where}.birth_date", "une date AAAA-MM-JJ est attendue.")
        fields["birth_date"] = birth_date
        existing = Patient.objects.filter(ins=ins).first()
        if "space_state" in item:
            state = _text(item["space_state"])
            if state not in Patient.SpaceState.values:
                self.error(
                    f"{where}.space_state", f"état inconnu (possibles : {', '.join(Patient.SpaceState.values)})."
                )
            fields["space_state"] = state
            if state == Patient.SpaceState.CLOSED:
                if not (existing and existing.space_closed_at):
                    fields["space_closed_at"] = timezone.now()
            else:
                fields["space_closed_at"] = None
        self.stop_if_errors(before)
        snapshot = _snapshot(existing) if existing else None
        user, account_outcome = None, "unchanged"
        if "account" in item:
            last = fields.get("usage_name") or fields.get("birth_name", "")
            user, account_outcome = self.account(
                f"{where}.account",
                item["account"],
                existing_user=existing.user if existing else None,
                names={"first_name": fields.get("first_names", "").split(" ")[0], "last_name": last},
            )
        try:
            patient = enrol_patient(ins=ins, user=user, **fields)
        except ValidationError as exc:
            self.validation_error(where, exc)
            raise _ItemFailed from None
        if existing is None:
            return "created"
        if _snapshot(patient) != snapshot or account_outcome != "unchanged":
            return "updated"
        return "unchanged"

    def _dispensations(self, where, item):
        from patients.models import Patient, PharmacyDispensation

        before = len(self.report.errors)
        self.check_keys(
            where,
            item,
            {"patient", "pharmacy_mailbox", "dispensed_on"},
            {"patient", "pharmacy_mailbox", "dispensed_on"},
        )
        self.stop_if_errors(before)
        ins = identifiers.normalise_ins(_text(item["patient"]))
        patient = Patient.objects.filter(ins=ins).first()
        if patient is None:
            self.error(f"{where}.patient", self._unknown("patient", "patients", ins, "matricule INS"))
        mailbox = self.mailbox_ref(f"{where}.pharmacy_mailbox", item["pharmacy_mailbox"])
        if mailbox is not None and (
            mailbox.kind != Mailbox.Kind.ORGANISATIONAL
            or mailbox.structure is None
            or mailbox.structure.kind != Structure.Kind.PHARMACY
        ):
            self.error(
                f"{where}.pharmacy_mailbox",
                "une délivrance se rattache à la BAL organisationnelle d'une officine (structure de type pharmacy).",
            )
        dispensed_on = _date(item["dispensed_on"])
        if dispensed_on is None:
            self.error(f"{where}.dispensed_on", "une date AAAA-MM-JJ est attendue.")
        self.stop_if_errors(before)
        found = PharmacyDispensation.objects.filter(
            patient=patient, pharmacy_mailbox=mailbox, dispensed_on=dispensed_on
        )
        if found.exists():
            return "unchanged"
        obj = PharmacyDispensation(patient=patient, pharmacy_mailbox=mailbox, dispensed_on=dispensed_on)
        return self.upsert(where, obj, {})[1]


SECTION_KEYS = {
    "structures": ("finess", "siret", "siren"),
    "domains": ("name",),
    "trusted_domains": ("name",),
    "accounts": ("username",),
    "professionals": ("rpps", "adeli", "local_identifier"),
    "mailboxes": ("address",),
    "patients": ("ins",),
}


def _item_key(section: str, item) -> str:
    """What other items use to refer to this one (FINESS, address, INS …), normalised."""
    if not isinstance(item, dict):
        return ""
    for name in SECTION_KEYS.get(section, ()):
        value = _text(item.get(name))
        if value:
            if name in ("finess", "siret", "siren", "rpps", "adeli", "ins"):
                return identifiers.normalise_number(value)
            return value if name in ("username", "local_identifier") else value.lower()
    return ""


def _kind_of(item) -> str | None:
    if not isinstance(item, dict):
        return None
    return KIND_ALIASES.get(_text(item.get("kind")).lower())


def _date(value) -> datetime.date | None:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(_text(value))
    except ValueError:
        return None


def _snapshot(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


# --- The initial-password e-mail ---------------------------------------------------------------


def password_setup_url(user) -> str:
    from allauth.account.forms import default_token_generator
    from allauth.account.utils import user_pk_to_url_str

    key = default_token_generator.make_token(user)
    path = reverse("account_reset_password_from_key", kwargs={"uidb36": user_pk_to_url_str(user), "key": key})
    return f"{settings.SITE_URL}{path}"


def send_initial_password_mail(user_id: int) -> None:
    """Invite a provisioned account without a password to choose one (no health content)."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not user.email:
        return
    send_mail(
        "Votre compte de messagerie sécurisée : choisissez votre mot de passe",
        (
            "Bonjour,\n\n"
            "Un compte a été ouvert à votre nom sur la messagerie sécurisée de santé.\n"
            f"Votre identifiant de connexion : {user.username}\n\n"
            "Pour choisir votre mot de passe, ouvrez ce lien :\n"
            f"{password_setup_url(user)}\n\n"
            "Si vous n'attendiez pas ce message, ignorez-le.\n"
        ),
        None,
        [user.email],
    )


# --- Administrative actions shared by the admin and the commands -------------------------------


def deactivate_mailboxes(mailboxes, *, actor=None) -> int:
    """Switch mailboxes off: nobody reaches them any more (mailboxes.access filters on is_active)."""
    return _set_active(mailboxes, False, actor)


def reactivate_mailboxes(mailboxes, *, actor=None) -> int:
    return _set_active(mailboxes, True, actor)


@transaction.atomic
def _set_active(mailboxes, active: bool, actor) -> int:
    ids = [box.pk for box in mailboxes if box.is_active != active]
    Mailbox.objects.filter(pk__in=ids).update(is_active=active)
    for pk in ids:
        record(
            AuditEvent.Action.ADMIN_CHANGE,
            actor=actor,
            actor_label="" if actor else "system",
            object_type="mailbox",
            object_id=pk,
            mailbox_id=pk,
            detail={"change": "activated" if active else "deactivated"},
        )
    return len(ids)
