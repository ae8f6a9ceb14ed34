"""This operator's own boxes in the directory, beside the national ones (same search).

A hosted entry mirrors a listed, active, non-patient `Mailbox`: its owner's name and profession
(nominative), its display name (organisational, applicative), its structure and address, and the
dematerialisation choice of its owner or responsible professional (`Professional.dematerialisation`,
the one home of that choice, set in /annuaire/preferences/, the admin or provisioning). The
mirror follows every save of a mailbox, a professional or a structure (signals, in the same
transaction), every import, and the scheduled import. An unlisted box has no entry, and the search
re-reads `unlisted` and `is_active` on the live mailbox anyway (directory/search.py).
"""

from __future__ import annotations

import re

from django.db import connection

from directory.extract import department_of
from directory.models import Entry, SearchRow
from directory.normalise import flatten, fold
from mailboxes.models import Mailbox, Professional

# Professional.profession → the national "Code Profession" and its label.
PROFESSION_CODES = {
    Professional.Profession.MEDECIN: ("10", "Médecin"),
    Professional.Profession.PHARMACIEN: ("21", "Pharmacien"),
    Professional.Profession.CHIRURGIEN_DENTISTE: ("40", "Chirurgien-Dentiste"),
    Professional.Profession.SAGE_FEMME: ("50", "Sage-Femme"),
    Professional.Profession.INFIRMIER: ("60", "Infirmier"),
    Professional.Profession.KINE: ("70", "Masseur-Kinésithérapeute"),
    Professional.Profession.PODOLOGUE: ("80", "Pédicure-Podologue"),
}
_POSTCODE_LINE = re.compile(r"\b(\d{5})\s+(.+)$")
LOCK_KEY = 1_202_612  # pg_advisory_xact_lock key of directory writers ("annuaire", issue 12)
MIRRORED_FIELDS = {"kind", "address", "display_name", "structure", "owner", "responsible", "unlisted", "is_active"}


def lock_directory() -> None:
    """Serialise the writers of the directory (imports, mirror) until the transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])


def listed_boxes():
    return (
        Mailbox.objects.filter(is_active=True, unlisted=False)
        .exclude(kind=Mailbox.Kind.PATIENT)
        .select_related("owner", "responsible", "structure")
    )


def entry_for(box: Mailbox) -> tuple[Entry, str, str]:
    """The hosted entry of `box`, its folded name key and its searched text."""
    pro = box.owner if box.kind == Mailbox.Kind.NOMINATIVE else box.responsible
    structure = box.structure
    street, postcode, town = split_postal(structure.address if structure else "")
    entry = Entry(address=box.address, kind=box.kind, source=Entry.Source.HOSTED, mailbox=box)
    entry.structure_name = structure.name if structure else ""
    entry.street, entry.postcode, entry.town = street, postcode, town
    entry.department = department_of(postcode)
    entry.country = "France" if postcode else ""
    entry.dematerialisation = pro.dematerialisation if pro else None
    if box.kind == Mailbox.Kind.NOMINATIVE and pro:
        entry.civility = pro.get_civility_display() if pro.civility else ""
        entry.last_name, entry.first_name = pro.last_name, pro.first_name
        entry.profession_code, entry.profession_label = PROFESSION_CODES.get(
            pro.profession, ("", pro.get_profession_display())
        )
        entry.specialty_label = pro.specialty
        name_key = fold(f"{pro.last_name} {pro.first_name}")
    else:
        entry.service = box.display_name
        name_key = fold(box.display_name or entry.structure_name or box.local_part)
    search_text = " ".join(
        flatten(part)
        for part in (
            name_key,
            entry.profession_label,
            entry.specialty_label,
            entry.structure_name,
            entry.service,
            entry.street,
            f"{postcode} {town}",
        )
        if part
    )
    return entry, name_key, search_text


def split_postal(text: str) -> tuple[str, str, str]:
    """(street, postcode, town) from a structure's free-text postal address."""
    lines = [line.strip() for line in (text or "").replace(",", "\n").splitlines() if line.strip()]
    for index, line in enumerate(lines):
        found = _POSTCODE_LINE.search(line)
        if found:
            before = lines[:index] + ([line[: found.start()].strip()] if found.start() else [])
            return ", ".join(before), found.group(1), found.group(2).strip()
    return ", ".join(lines), "", ""


_UPDATED = [
    "kind",
    "source",
    "mailbox",
    "civility",
    "last_name",
    "first_name",
    "profession_code",
    "profession_label",
    "specialty_label",
    "structure_name",
    "service",
    "street",
    "postcode",
    "town",
    "department",
    "country",
    "dematerialisation",
    "exercises",
]


def _upsert(built: list[tuple[Entry, str, str]]) -> None:
    """Write hosted entries (over a national one of the same address) and their search rows."""
    if not built:
        return
    entries = [entry for entry, _, _ in built]
    Entry.objects.bulk_create(entries, update_conflicts=True, unique_fields=["address"], update_fields=_UPDATED)
    ids = dict(Entry.objects.filter(address__in=[e.address for e in entries]).values_list("address", "pk"))
    rows = [
        SearchRow(entry_id=ids[entry.address], mailbox_id=entry.mailbox_id, name_key=name_key, search_text=text)
        for entry, name_key, text in built
    ]
    SearchRow.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=["entry"], update_fields=["mailbox", "name_key", "search_text"]
    )


def sync_all() -> int:
    """Rebuild every hosted entry; drop national entries of boxes hosted here. Returns the count."""
    lock_directory()
    wanted = [entry_for(box) for box in listed_boxes()]
    addresses = {entry.address for entry, _, _ in wanted}
    hosted_here = Mailbox.objects.values("address")
    # Hosted entries are those with a box (deleted with it): the partial index of boxes finds
    # them, and the address index the others; `source`, or an OR of the two, would read every
    # national entry.
    for stale in (Entry.objects.filter(mailbox__isnull=False), Entry.objects.filter(address__in=hosted_here)):
        stale.exclude(address__in=addresses).delete()
    for start in range(0, len(wanted), 500):
        _upsert(wanted[start : start + 500])
    return len(wanted)


def sync_mailboxes(boxes) -> None:
    """Mirror these boxes now (inside the caller's transaction)."""
    boxes = [b for b in boxes if b.kind != Mailbox.Kind.PATIENT]
    if not boxes:
        return
    lock_directory()
    listed = [b for b in boxes if b.is_active and not b.unlisted]
    Entry.objects.filter(address__in=[b.address for b in boxes if b not in listed]).delete()
    # A box whose address changed leaves its old entry behind: it goes with the mailbox link.
    Entry.objects.filter(mailbox__in=listed).exclude(address__in=[b.address for b in listed]).delete()
    _upsert([entry_for(b) for b in listed])
