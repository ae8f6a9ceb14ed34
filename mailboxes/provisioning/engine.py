"""The provisioning run: a file of sections applied all or nothing (RULES.md §1–2).

`manage.py provision FILE` and `manage.py seed_demo` call `provision()`. Each app provisions its
own objects through a `Section` it registers here (`register_section`): the operator's
structures, domains, accounts, professionals, mailboxes and members
(`mailboxes.provisioning.operator`), the patients and pharmacy dispensations
(`patients.provisioning`). This module only knows how to run them.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from audit.events import record
from audit.models import AuditEvent
from mailboxes import identifiers
from mailboxes.models import Mailbox, Professional, Structure
from mailboxes.provisioning.invitations import queue_account_invitation

NUMBER_FIELDS = {"finess", "siret", "siren", "rpps", "adeli", "ins"}

ACCOUNT_KEYS = {"username", "email", "password", "send_password_reset"}


@dataclass(frozen=True)
class Section:
    """One section of a provisioning file: `apply(provisioner, where, item)` creates or updates
    one item and returns "created", "updated" or "unchanged". Sections run in `position` order;
    `keys` are the item fields other items use to refer to it (FINESS, address, INS …);
    `order` sorts the items of the section before they run."""

    name: str
    position: int
    apply: Callable
    keys: tuple[str, ...] = ()
    order: Callable | None = None


_sections: dict[str, Section] = {}


def register_section(section: Section) -> None:
    _sections[section.name] = section


def sections() -> list[Section]:
    return sorted(_sections.values(), key=lambda s: s.position)


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
        for section in sections():
            c = self.counts.get(section.name)
            if c:
                lines.append(
                    f"{section.name}: {c['created']} créé(s), {c['updated']} modifié(s), {c['unchanged']} inchangé(s)"
                )
        return lines


class ItemFailed(Exception):
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
        Provisioner(data, report, actor).run()
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


def text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    return str(value).strip()


class Provisioner:
    """The state of one run: the report, the items that failed (for clearer later errors)
    and the item being applied; sections call its helpers."""

    def __init__(self, data, report: Report, actor=None):
        self.data = data
        self.report = report
        self.actor = actor
        self.failed: dict[str, set[str]] = {s.name: set() for s in sections()}
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
        known = [s.name for s in sections()]
        for name in self.data:
            if name not in known:
                self.error(name, f"section inconnue (sections possibles : {', '.join(known)}).")
        for section in sections():
            items = self.data.get(section.name) or []
            if not isinstance(items, list):
                self.error(section.name, "une liste d'éléments est attendue.")
                continue
            order = list(enumerate(items))
            if section.order is not None:
                order.sort(key=lambda pair: section.order(pair[1]))
            for index, item in order:
                self._item(section, index, item)

    def _item(self, section: Section, index: int, item) -> None:
        where = f"{section.name}[{index}]"
        before = len(self.report.errors)
        self.key = item_key(section, item)
        self.item = item
        self.deferred = []  # unknown keys: reported, but the item is still checked in full
        outcome = None
        try:
            with transaction.atomic():
                if not isinstance(item, dict):
                    self.error(where, "un dictionnaire de champs est attendu.")
                    raise ItemFailed
                outcome = section.apply(self, where, item)
                if len(self.report.errors) > before or self.deferred:
                    raise ItemFailed
        except ItemFailed:
            outcome = None
        except ValidationError as exc:
            self.validation_error(where, exc)
            outcome = None
        except IntegrityError as exc:
            self.error(where, f"conflit avec une donnée existante ({exc.__class__.__name__}).")
            outcome = None
        self.report.errors.extend(self.deferred)
        if outcome is None:
            self.failed[section.name].add(self.key)
        else:
            self.report.add(section.name, outcome)

    def check_keys(self, where: str, item: dict, allowed: set[str], required: set[str]) -> None:
        for key in item:
            if key not in allowed:
                self.deferred.append(f"{where}.{key}: champ inconnu (champs possibles : {', '.join(sorted(allowed))}).")
        for key in sorted(required):
            if text(item.get(key)) == "":
                self.error(f"{where}.{key}", "ce champ est obligatoire.")

    def stop_if_errors(self, before: int) -> None:
        if len(self.report.errors) > before:
            raise ItemFailed

    # -- generic upsert: set only the keys the file gives, full_clean, save if anything changed
    def upsert(self, where, obj, values: dict, *, exclude=(), rename=None) -> tuple[object, str]:
        creating = obj._state.adding
        previous = snapshot(obj)
        for name, value in values.items():
            setattr(obj, name, value)
        try:
            obj.full_clean(exclude=list(exclude))
        except ValidationError as exc:
            self.validation_error(where, exc, rename)
            raise ItemFailed from None
        if creating:
            obj.save()
            return obj, "created"
        if snapshot(obj) != previous:
            obj.save()
            return obj, "updated"
        return obj, "unchanged"

    # -- references
    def structure_ref(self, where: str, value) -> Structure | None:
        ref = identifiers.normalise_number(text(value))
        if not ref:
            return None
        found = Structure.objects.filter(Q(finess=ref) | Q(siret=ref) | Q(siren=ref)).first()
        if found is None:
            self.error(where, self.unknown("structure", "structures", ref, "FINESS, SIRET ou SIREN"))
        return found

    def professional_ref(self, where: str, value) -> Professional | None:
        ref = text(value)
        if not ref:
            return None
        number = identifiers.normalise_number(ref)
        found = (
            Professional.objects.filter(Q(rpps=number) | Q(adeli=number)).first() if number else None
        ) or Professional.objects.filter(local_identifier=ref).first()
        if found is None:
            self.error(where, self.unknown("professionnel", "professionals", ref, "RPPS, ADELI ou identifiant local"))
        return found

    def mailbox_ref(self, where: str, value) -> Mailbox | None:
        ref = text(value).lower()
        if not ref:
            return None
        found = Mailbox.objects.filter(address=ref).first()
        if found is None:
            self.error(where, self.unknown("BAL", "mailboxes", ref, "adresse"))
        return found

    def user_ref(self, where: str, value):
        ref = text(value)
        found = get_user_model().objects.filter(username=ref).first() if ref else None
        if found is None:
            self.error(where, self.unknown("compte", "accounts", ref, "identifiant de connexion"))
        return found

    def unknown(self, what: str, section: str, ref: str, by: str) -> str:
        if ref in self.failed.get(section, ()):
            return f"{what} « {ref} » en erreur plus haut dans le fichier (section {section})."
        return f"{what} « {ref} » introuvable ({by}), ni dans le fichier ni en base."

    # -- accounts (shared by accounts, professionals and patients)
    def account(self, where: str, spec, existing_user=None, names=None, extra=None):
        """Create or update a login account; returns (user, outcome)."""
        User = get_user_model()
        if not isinstance(spec, dict):
            self.error(where, "un dictionnaire (username, email, password) est attendu.")
            raise ItemFailed
        before = len(self.report.errors)
        self.check_keys(where, spec, ACCOUNT_KEYS, {"username"})
        self.stop_if_errors(before)
        username = text(spec["username"])
        email = text(spec.get("email")).lower()
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
        previous = snapshot(user)
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
            if snapshot(user) == previous:
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
            queue_account_invitation(user.pk)
        return user, "created"


def item_key(section: Section, item) -> str:
    """What other items use to refer to this one (FINESS, address, INS …), normalised."""
    if not isinstance(item, dict):
        return ""
    for name in section.keys:
        value = text(item.get(name))
        if value:
            if name in ("finess", "siret", "siren", "rpps", "adeli", "ins"):
                return identifiers.normalise_number(value)
            return value if name in ("username", "local_identifier") else value.lower()
    return ""


def date(value) -> datetime.date | None:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(text(value))
    except ValueError:
        return None


def snapshot(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}
