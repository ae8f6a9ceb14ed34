"""The operator's sections of a provisioning file (RULES.md §1–2): structures (FINESS, SIRET,
SIREN), hosted domains, trusted domains of other operators, accounts, professionals (RPPS,
ADELI), mailboxes (nominative, organisational, applicative) and their members."""

from __future__ import annotations

from django.db.models import Q

from mailboxes import identifiers
from mailboxes.models import Domain, Mailbox, Membership, Professional, Structure, TrustedDomain, domain_error
from mailboxes.provisioning.engine import (
    ACCOUNT_KEYS,
    ItemFailed,
    Provisioner,
    Section,
    register_section,
    text,
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


def structures(p: Provisioner, where: str, item: dict) -> str:
    allowed = {"name", "kind", "finess", "siret", "siren", "address", "phone"}
    before = len(p.report.errors)
    p.check_keys(where, item, allowed, {"name"})
    p.stop_if_errors(before)
    values = {k: text(item[k]) for k in allowed if k in item}
    for number in ("finess", "siret", "siren"):
        if number in values:
            values[number] = identifiers.normalise_number(values[number])
    lookup = Q(pk__in=[])
    for number in ("finess", "siret", "siren"):
        if values.get(number):
            lookup |= Q(**{number: values[number]})
    obj = Structure.objects.filter(lookup).first() or Structure()
    return p.upsert(where, obj, values)[1]


def domains(p: Provisioner, where: str, item: dict) -> str:
    before = len(p.report.errors)
    p.check_keys(where, item, {"name", "structure"}, {"name", "structure"})
    p.stop_if_errors(before)
    name = text(item["name"]).lower()
    structure = p.structure_ref(f"{where}.structure", item["structure"])
    p.stop_if_errors(before)
    obj = Domain.objects.filter(name=name).first() or Domain()
    return p.upsert(where, obj, {"name": name, "structure": structure})[1]


def trusted_domains(p: Provisioner, where: str, item: dict) -> str:
    before = len(p.report.errors)
    p.check_keys(where, item, {"name", "source"}, {"name"})
    p.stop_if_errors(before)
    name = text(item["name"]).lower()
    error = domain_error(name)
    if error:
        p.error(f"{where}.name", error)
    if Domain.objects.filter(name=name).exists():
        p.error(f"{where}.name", f"« {name} » est un domaine hébergé ici, pas un domaine d'un autre opérateur.")
    p.stop_if_errors(before)
    obj = TrustedDomain.objects.filter(name=name).first() or TrustedDomain()
    values = {"name": name}
    if "source" in item:
        values["source"] = text(item["source"])
    return p.upsert(where, obj, values)[1]


def accounts(p: Provisioner, where: str, item: dict) -> str:
    extra_keys = {"first_name", "last_name", "is_staff", "is_superuser", "is_active"}
    extra = {k: item[k] for k in extra_keys if k in item}
    for flag in ("is_staff", "is_superuser", "is_active"):
        if flag in extra and not isinstance(extra[flag], bool):
            p.error(f"{where}.{flag}", "true ou false attendu.")
            raise ItemFailed
    for name in ("first_name", "last_name"):
        if name in extra:
            extra[name] = text(extra[name])
    spec = {k: v for k, v in item.items() if k not in extra_keys}
    # Unknown keys are reported against the full list of what an account accepts.
    for key in spec:
        if key not in ACCOUNT_KEYS:
            p.error(
                f"{where}.{key}",
                f"champ inconnu (champs possibles : {', '.join(sorted(ACCOUNT_KEYS | extra_keys))}).",
            )
            raise ItemFailed
    return p.account(where, spec, extra=extra)[1]


def professionals(p: Provisioner, where: str, item: dict) -> str:
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
    before = len(p.report.errors)
    p.check_keys(where, item, allowed, {"first_name", "last_name", "profession"})
    p.stop_if_errors(before)
    values = {k: text(item[k]) for k in allowed - {"structure", "account", "dematerialisation"} if k in item}
    for number in ("rpps", "adeli"):
        if number in values:
            values[number] = identifiers.normalise_number(values[number])
    if "dematerialisation" in item:
        values["dematerialisation"] = bool(item["dematerialisation"])
    structure = p.structure_ref(f"{where}.structure", item.get("structure"))
    if "structure" in item:
        values["structure"] = structure
    p.stop_if_errors(before)
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
        user, account_outcome = p.account(
            f"{where}.account",
            item["account"],
            existing_user=obj.user if obj.pk else None,
            names={"first_name": values["first_name"], "last_name": values["last_name"]},
        )
        values["user"] = user
    _, outcome = p.upsert(where, obj, values, exclude=["user"])
    return "updated" if outcome == "unchanged" and account_outcome != "unchanged" else outcome


def mailboxes(p: Provisioner, where: str, item: dict) -> str:
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
    before = len(p.report.errors)
    p.check_keys(where, item, allowed, {"address", "kind"})
    p.stop_if_errors(before)
    address = text(item["address"]).lower()
    kind = kind_of(item)
    if kind is None:
        p.error(f"{where}.kind", "type inconnu : nominative, organisational ou applicative.")
    values = {"address": address, "kind": kind}
    for name in ("display_name", "signature"):
        if name in item:
            values[name] = text(item[name])
    for name in ("quota_bytes", "max_message_bytes"):
        if name in item:
            if not isinstance(item[name], int) or isinstance(item[name], bool) or item[name] <= 0:
                p.error(f"{where}.{name}", "un nombre d'octets entier et positif est attendu.")
            else:
                values[name] = item[name]
    for name in ("unlisted", "is_preferred", "is_active"):
        if name in item:
            if not isinstance(item[name], bool):
                p.error(f"{where}.{name}", "true ou false attendu.")
            else:
                values[name] = item[name]
    for name in ("owner", "responsible"):
        if name in item:
            values[name] = p.professional_ref(f"{where}.{name}", item[name])
    if "return_mailbox" in item:
        values["return_mailbox"] = p.mailbox_ref(f"{where}.return_mailbox", item["return_mailbox"])
    p.stop_if_errors(before)
    obj = Mailbox.objects.filter(address=address).first() or Mailbox()
    if obj.pk and obj.kind == Mailbox.Kind.PATIENT:
        p.error(f"{where}.address", "c'est une BAL patient : elle se crée avec le patient (section patients).")
        raise ItemFailed
    return p.upsert(where, obj, values)[1]


def memberships(p: Provisioner, where: str, item: dict) -> str:
    before = len(p.report.errors)
    p.check_keys(where, item, {"mailbox", "user", "role"}, {"mailbox", "user"})
    p.stop_if_errors(before)
    mailbox = p.mailbox_ref(f"{where}.mailbox", item["mailbox"])
    user = p.user_ref(f"{where}.user", item["user"])
    p.stop_if_errors(before)
    obj = Membership.objects.filter(mailbox=mailbox, user=user).first() or Membership(mailbox=mailbox, user=user)
    values = {"role": text(item["role"])} if "role" in item else {}
    return p.upsert(where, obj, values)[1]


def kind_of(item) -> str | None:
    if not isinstance(item, dict):
        return None
    return KIND_ALIASES.get(text(item.get("kind")).lower())


def applicative_last(item) -> bool:
    """Applicative boxes refer to their organisational return box: create those first."""
    return kind_of(item) == Mailbox.Kind.APPLICATIVE


for _section in (
    Section("structures", 10, structures, keys=("finess", "siret", "siren")),
    Section("domains", 20, domains, keys=("name",)),
    Section("trusted_domains", 30, trusted_domains, keys=("name",)),
    Section("accounts", 40, accounts, keys=("username",)),
    Section("professionals", 50, professionals, keys=("rpps", "adeli", "local_identifier")),
    Section("mailboxes", 60, mailboxes, keys=("address",), order=applicative_last),
    Section("memberships", 70, memberships),
):
    register_section(_section)
