"""Finding a correspondent: completion as you type and the directory search page (RULES.md §1).

Accent- and case-insensitive: the typing is folded like the stored text (directory.normalise).
Ranked: names that start with what was typed first, then addresses that do, then entries that
contain every word anywhere (name, profession, speciality, structure, service, street, town,
postcode). On PostgreSQL the three tiers are index scans (pattern B-tree on the name key and the
address, trigram GIN on the searched text); elsewhere they scan, which is fine for a small
directory. Liste rouge never shows: every query goes through `visible()`, which re-reads the live
mailbox of a hosted entry.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Collate

from directory.models import Entry, ImportRun, SearchRow
from directory.normalise import fold

COMPLETION_SIZE = 8
PAGE_SIZE = 20
MAX_RESULTS = 1000  # a search page counts up to this many, then asks for more precise words
MIN_CONTAINS = 3
DEPARTMENT = re.compile(r"[0-9]{2}|2[ab]|9[78][0-9]")
CANDIDATES = 40  # trigrams need three characters: shorter words only match as name prefixes


LISTED = Q(mailbox__isnull=True) | Q(mailbox__unlisted=False, mailbox__is_active=True)


def visible() -> QuerySet:
    """Every entry a search may show: national ones, and hosted ones whose box is listed and
    active right now (the mirror may lag a bulk update; this never does)."""
    return Entry.objects.filter(LISTED)


def visible_rows() -> QuerySet:
    """The same, over the narrow search rows (directory.models.SearchRow)."""
    return SearchRow.objects.filter(LISTED)


@dataclass(frozen=True)
class Criteria:
    text: str = ""
    kind: str = ""
    profession: str = ""
    department: str = ""

    @property
    def folded(self) -> str:
        return fold(self.text)

    @property
    def words(self) -> list[str]:
        """The folded words, less a department code typed among them ("cardiologue 38")."""
        words = self.folded.split()
        return [w for w in words if not (DEPARTMENT.fullmatch(w) and len(words) > 1)]

    @property
    def typed_department(self) -> str:
        """A department code typed among other words: a filter rather than a word to find."""
        words = self.folded.split()
        found = [w for w in words if DEPARTMENT.fullmatch(w)]
        return found[0].upper() if found and len(words) > 1 else ""

    @property
    def address_prefix(self) -> str:
        raw = self.text.strip().lower()
        return raw if ("@" in raw or "." in raw) and " " not in raw else ""

    @property
    def searchable(self) -> bool:
        return len(self.folded) >= 2


def _filtered(rows: QuerySet, criteria: Criteria) -> QuerySet:
    if criteria.typed_department and not criteria.department:
        rows = rows.filter(entry__department=criteria.typed_department)
    if criteria.kind:
        rows = rows.filter(entry__kind=criteria.kind)
    if criteria.profession:
        rows = rows.filter(entry__profession_code=criteria.profession)
    if criteria.department:
        rows = rows.filter(entry__department=criteria.department)
    return rows


def _contains(criteria: Criteria) -> Q | None:
    words = criteria.words
    if "@" in criteria.text or not any(len(w) >= MIN_CONTAINS for w in words):  # an address: prefix only
        return None
    condition = Q()
    for word in words:
        condition &= Q(search_text__contains=word)
    return condition


def name_order(field: str = "name_key"):
    """Order by name key in byte order: on PostgreSQL the "C" collation of the name index, so
    that the first names after a prefix are read straight from it."""
    return Collate(field, "C") if connection.vendor == "postgresql" else F(field)


@contextmanager
def custom_plans():
    """Plan the queries inside for their own values (PostgreSQL). A statement run
    DB_PREPARE_THRESHOLD times on a connection is prepared, and may then run a generic plan:
    for `search_text LIKE $1` that is a scan of every search row (~115 ms for a rare word)
    instead of the trigram index. Costs one statement and a commit."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield


def name_starts(rows: QuerySet, prefix: str, field: str = "name_key") -> QuerySet:
    """`rows` whose name key starts with `prefix` (folded: letters, digits, spaces). On PostgreSQL
    as a range of the "C" name index, [prefix, prefix with its last character raised): in byte
    order exactly the keys that start with it. Unlike `LIKE $1`, a range stays an index
    condition in the generic plan of a prepared statement (DB_PREPARE_THRESHOLD), where a
    pattern would walk the whole index (~90 ms)."""
    if connection.vendor != "postgresql" or not prefix:
        return rows.filter(**{f"{field}__startswith": prefix})
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return rows.alias(name_c=Collate(field, "C")).filter(name_c__gte=prefix, name_c__lt=upper)


def complete(text: str, size: int = COMPLETION_SIZE) -> list[Entry]:
    """Up to `size` entries for what is being typed, best first, one indexed query per tier:
    names that start with it (in name order, read from the index), addresses that start with
    it, then entries that contain every word — the first CANDIDATES of those, in name order
    (sorting every match of a common fragment would read thousands of rows per keystroke)."""
    criteria = Criteria(text=text)
    if not criteria.searchable:
        return []
    # The name tier reads whole entries at once (the name index, then each entry by its key):
    # most completions stop here, in one query.
    named = list(
        name_starts(visible(), criteria.folded, "search__name_key").order_by(name_order("search__name_key"))[:size]
    )
    found = [entry.pk for entry in named]
    if len(found) < size and criteria.address_prefix:
        addresses = visible().filter(address__startswith=criteria.address_prefix).exclude(pk__in=found)
        with custom_plans():  # `address LIKE $1` likewise
            found += list(addresses.order_by("address").values_list("pk", flat=True)[: size - len(found)])
    contains = _contains(criteria)
    if len(found) < size and contains is not None:
        candidates = visible_rows().filter(contains).exclude(entry_id__in=found)
        with custom_plans():
            ranked = sorted(candidates.values_list("name_key", "entry_id")[:CANDIDATES])
        found += [pk for _, pk in ranked[: size - len(found)]]
    entries = {entry.pk: entry for entry in named}
    if len(entries) < len(found):
        entries.update(Entry.objects.in_bulk([pk for pk in found if pk not in entries]))
    return [entries[pk] for pk in found]


@dataclass
class Page:
    results: list[Entry] = field(default_factory=list)
    number: int = 1
    total: int = 0
    capped: bool = False

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number * PAGE_SIZE < self.total

    @property
    def first_index(self) -> int:
        return (self.number - 1) * PAGE_SIZE + 1 if self.results else 0

    @property
    def last_index(self) -> int:
        return (self.number - 1) * PAGE_SIZE + len(self.results)


def search(criteria: Criteria, page: int = 1) -> Page:
    """One page of results, names starting with the words first, then alphabetical."""
    if not criteria.searchable:
        return Page()
    name = " ".join(criteria.words)
    condition = Q(name_key__startswith=name)
    contains = _contains(criteria)
    if contains is not None:
        condition |= contains
    if criteria.address_prefix:
        condition |= Q(entry__address__startswith=criteria.address_prefix)
    if criteria.words == [criteria.folded] and DEPARTMENT.fullmatch(criteria.folded):
        condition |= Q(entry__department=criteria.folded.upper())  # "38" alone: that department
    qs = _filtered(visible_rows().filter(condition), criteria)
    with custom_plans():  # patterns as parameters: see custom_plans
        total = qs[: MAX_RESULTS + 1].count()
        last_page = max(1, -(-min(total, MAX_RESULTS) // PAGE_SIZE))
        number = min(max(page, 1), last_page)
        ranked = qs.annotate(
            rank=Case(When(name_key__startswith=name, then=Value(0)), default=Value(1), output_field=IntegerField())
        ).order_by("rank", name_order(), "entry__address")
        start = (number - 1) * PAGE_SIZE
        results = [row.entry for row in ranked.select_related("entry")[start : start + PAGE_SIZE]]
    return Page(results=results, number=number, total=min(total, MAX_RESULTS), capped=total > MAX_RESULTS)


def filter_choices() -> dict[str, list[tuple[str, str]]]:
    """Professions and departments present in the directory, for the search filters; cached
    until the next import."""
    last = ImportRun.objects.filter(status=ImportRun.Status.DONE).values_list("pk", flat=True).first()
    key = f"directory:choices:{last or 0}"
    choices = cache.get(key)
    if choices is None:
        professions = (
            Entry.objects.exclude(profession_code="")
            .values_list("profession_code", "profession_label")
            .distinct()
            .order_by("profession_label")
        )
        seen, profession_choices = set(), []
        for code, label in professions:
            if code not in seen:
                seen.add(code)
                profession_choices.append((code, label))
        departments = Entry.objects.exclude(department="").values_list("department", flat=True).distinct()
        choices = {
            "professions": profession_choices,
            "departments": [(d, d) for d in sorted(set(departments))],
        }
        cache.set(key, choices, 3600)
    return choices
