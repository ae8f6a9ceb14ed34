"""Finding a correspondent: completion as you type and the directory search page (RULES.md §1).

Accent- and case-insensitive: the typing is folded like the stored text (directory.normalise).
Ranked: names that start with what was typed first, then addresses that do, then entries that
contain every word anywhere (name, profession, speciality, structure, service, street, town,
postcode). On PostgreSQL the three tiers are index scans (pattern B-tree on the name key and the
address, trigram GIN on the searched text, in two halves: `halves_sql`); elsewhere they scan,
which is fine for a small directory. Liste rouge never shows: every query goes through
`visible()` (or, for the completion's hand-written statements, `listed_sql`, the same rule),
which re-reads the live mailbox of a hosted entry.
"""

from __future__ import annotations

import functools
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import BooleanField, Case, F, IntegerField, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL
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


def listed_sql(alias: str) -> str:
    """LISTED in SQL, for the completion's statements: `alias` is a table with a `mailbox_id`,
    joined to its box as `m` (LEFT JOIN mailboxes_mailbox m). tests/directory/test_search.py
    holds it to the ORM's answer (national, listed, unlisted, closed boxes)."""
    return f"({alias}.mailbox_id IS NULL OR (m.is_active AND NOT m.unlisted))"


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


def contains_words(criteria: Criteria) -> list[str]:
    """The words every "contains" match must hold; none for an address (prefix only) or when no
    word is long enough for the trigram index."""
    words = criteria.words
    if "@" in criteria.text or not any(len(w) >= MIN_CONTAINS for w in words):
        return []
    return words


def halves_sql(condition: str, alias: str) -> str:
    """`condition` (on the search row `alias`) asked of each half of the trigram index, which
    PostgreSQL builds as two partial indexes (`entry_id % 2 = 0`, `= 1`: migration 0004) so
    that an import builds them side by side; the planner reads a partial index only for a
    condition that names its half. The same rows as `condition` alone (an id is even or odd).
    `condition`'s parameters go twice; `%` is written for a driver with parameters."""
    return f"(({alias}.entry_id %% 2 = 0 AND {condition}) OR ({alias}.entry_id %% 2 = 1 AND {condition}))"


def _contains(criteria: Criteria) -> Q | None:
    words = contains_words(criteria)
    if not words:
        return None
    if connection.vendor == "postgresql":
        likes = " AND ".join([f"{SearchRow._meta.db_table}.search_text LIKE %s"] * len(words))
        patterns = [f"%{connection.ops.prep_for_like_query(word)}%" for word in words]
        sql = halves_sql(likes, SearchRow._meta.db_table)
        return Q(RawSQL(sql, patterns * 2, output_field=BooleanField()))  # noqa: S611 - constants and parameters
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


class Suggestion(NamedTuple):
    """What a completion shows of an entry: the columns its statements read, not the whole
    `Entry` (whose `exercises` alone can be kilobytes)."""

    id: int
    address: str
    kind: str
    source: str
    civility: str
    last_name: str
    first_name: str
    profession_label: str
    specialty_label: str
    structure_name: str
    service: str
    town: str
    dematerialisation: bool | None

    display_name = Entry.display_name  # the entry's own rule, on the same attributes

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


KIND_LABELS = dict(Entry.Kind.choices)
SUGGESTION_COLUMNS = ", ".join(f"e.{name}" for name in Suggestion._fields)


@functools.cache
def completion_sql(vendor: str) -> dict[str, str]:
    """The completion's name and address statements, written once per process (the ORM compiled
    the same queries on every keystroke: most of the view's CPU). Name keys and addresses are
    compared in byte order: on PostgreSQL through the "C" name index and the pattern operators
    of the address index (varchar_pattern_ops, Entry.Meta), on SQLite by its default BINARY
    collation. Ranges, unlike `LIKE $1`, stay index conditions in the generic plan of a prepared
    statement (DB_PREPARE_THRESHOLD), where a pattern walks the whole index (~90 ms)."""
    postgres = vendor == "postgresql"
    c = ' COLLATE "C"' if postgres else ""
    ge, lt, by_address = ("~>=~", "~<~", "e.address USING ~<~") if postgres else (">=", "<", "e.address")
    return {
        "name": (
            f"SELECT {SUGGESTION_COLUMNS} FROM directory_searchrow s"  # noqa: S608 - constants only
            " JOIN directory_entry e ON e.id = s.entry_id"
            " LEFT JOIN mailboxes_mailbox m ON m.id = e.mailbox_id"
            f" WHERE {listed_sql('e')} AND s.name_key{c} >= %s AND s.name_key{c} < %s"
            f" ORDER BY s.name_key{c} LIMIT %s"
        ),
        "address": (
            f"SELECT {SUGGESTION_COLUMNS} FROM directory_entry e"  # noqa: S608 - constants only
            " LEFT JOIN mailboxes_mailbox m ON m.id = e.mailbox_id"
            f" WHERE {listed_sql('e')} AND e.address {ge} %s AND e.address {lt} %s AND {{excluded}}"
            f" ORDER BY {by_address} LIMIT %s"
        ),
    }


@functools.cache
def contains_sql(vendor: str, words: int) -> str:
    """The "contains" tier for that many words: the first CANDIDATES rows holding every word,
    then in name order (sorting every match of a common fragment would read thousands of rows
    per keystroke). `LIKE $1` needs `custom_plans`; on PostgreSQL the patterns go twice
    (`halves_sql`)."""
    postgres = vendor == "postgresql"
    c = ' COLLATE "C"' if postgres else ""
    like = "s.search_text LIKE %s" if postgres else "s.search_text LIKE %s ESCAPE '\\'"
    likes = " AND ".join([like] * words)
    return (
        f"SELECT {SUGGESTION_COLUMNS} FROM ("  # noqa: S608 - constants only
        " SELECT s.entry_id, s.name_key FROM directory_searchrow s"
        " LEFT JOIN mailboxes_mailbox m ON m.id = s.mailbox_id"
        f" WHERE {listed_sql('s')} AND {halves_sql(likes, 's') if postgres else likes} AND {{excluded}}"
        f" LIMIT {CANDIDATES}"
        ") c JOIN directory_entry e ON e.id = c.entry_id"
        f" ORDER BY c.name_key{c}, c.entry_id LIMIT %s"
    )


def _after(prefix: str) -> str | None:
    """The first string after every string that starts with `prefix`, in byte (code point)
    order: `prefix` with its last character raised. None past the last code point."""
    code = ord(prefix[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:  # no surrogates in UTF-8
        code = 0xE000
    return prefix[:-1] + chr(code) if code <= 0x10FFFF else None


def _excluded(column: str, ids: list[int]) -> tuple[str, list]:
    """`column` not among `ids`: one statement text whatever their number on PostgreSQL."""
    if connection.vendor == "postgresql":
        return f"{column} <> ALL(%s)", [ids]
    if not ids:
        return "1 = 1", []
    return f"{column} NOT IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _suggestions(cursor, sql: str, params: list) -> list[Suggestion]:
    cursor.execute(sql, params)
    return [Suggestion(*row[:-1], None if row[-1] is None else bool(row[-1])) for row in cursor.fetchall()]


def complete(text: str, size: int = COMPLETION_SIZE) -> list[Suggestion]:
    """Up to `size` entries for what is being typed, best first, one statement per tier: names
    that start with it (in name order, read from the index), addresses that start with it, then
    entries that contain every word — the first CANDIDATES of those, in name order. Most
    completions stop after the first statement."""
    criteria = Criteria(text=text)
    if not criteria.searchable:
        return []
    statements = completion_sql(connection.vendor)
    name = criteria.folded
    with connection.cursor() as cursor:
        found = _suggestions(cursor, statements["name"], [name, _after(name), size])
    prefix = criteria.address_prefix
    if len(found) < size and prefix and _after(prefix):
        excluded, ids = _excluded("e.id", [entry.id for entry in found])
        with connection.cursor() as cursor:
            sql = statements["address"].format(excluded=excluded)
            found += _suggestions(cursor, sql, [prefix, _after(prefix), *ids, size - len(found)])
    words = contains_words(criteria)
    if len(found) < size and words:
        excluded, ids = _excluded("s.entry_id", [entry.id for entry in found])
        sql = contains_sql(connection.vendor, len(words)).format(excluded=excluded)
        patterns = [f"%{connection.ops.prep_for_like_query(word)}%" for word in words]
        if connection.vendor == "postgresql":
            patterns *= 2  # halves_sql
        with custom_plans(), connection.cursor() as cursor:  # `search_text LIKE $1`: see custom_plans
            found += _suggestions(cursor, sql, [*patterns, *ids, size - len(found)])
    return found


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
