# ruff: noqa: S608 - the SQL of this module is assembled from its own constants, never from input
"""The SQL of an import: stage the file's rows, group them by address, compare, apply.

Everything runs inside the caller's transaction, so searches see the old directory until the
commit and the new one after, never a mix; a refusal rolls back and nothing is left behind.

1. ROWS holds one usable row per line, its cells trimmed, its search text folded. On PostgreSQL
   the checked lines go to the server by `COPY` as they are and SQL builds ROWS (`build_rows`,
   `fold_sql`): the Python side only checks the file's structure. Other
   databases get ROWS built in Python by `directory.extract.build_row`, the reference this SQL
   follows (tests/directory compares the two on PostgreSQL).
2. NEW (a view of ROWS) holds one row per address: its first row's cells, every exercise, all
   its search text.
3. DIFF classifies what differs: added, changed, removed, or hosted here (local data wins).
4. Three statements apply DIFF to `directory_entry`.
Hand-written SQL kept in this one module, on this app's tables.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from directory import extract
from directory.extract import COLUMNS, StagedRow

RAW = "directory_raw"
ROWS = "directory_rows"
NEW = "directory_new"
DIFF = "directory_diff"
ENTRY = "directory_entry"
MAILBOX = "mailboxes_mailbox"
TRIGRAM_INDEX = "directory_search_trgm"
SAMPLE = 50

# The columns of an entry copied from the first row of its address.
ENTRY_COLUMNS = [
    "address",
    "kind",
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
    "name_key",
]


def postgres() -> bool:
    return connection.vendor == "postgresql"


def _create(cursor, table: str, columns: str) -> None:
    # A temporary table outlives an import run inside a larger transaction (or on SQLite, a
    # commit): start afresh.
    cursor.execute(f"DROP TABLE IF EXISTS {table}")
    cursor.execute(f"CREATE TEMP TABLE {table} ({columns}){' ON COMMIT DROP' if postgres() else ''}")


def drop_temporary(cursor) -> None:
    cursor.execute(f"DROP VIEW IF EXISTS {NEW}")
    for table in (RAW, ROWS, DIFF):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def stage(cursor, stream, rejections) -> None:
    """Fill ROWS from the file; report rejected rows to `rejections`; raise ExtractRefused."""
    if postgres():
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
    cursor.execute(f"DROP VIEW IF EXISTS {NEW}")
    create_rows(cursor)
    lines = iter(stream)
    positions, width = extract.read_header(lines)
    if postgres():
        _copy_raw(cursor, extract.raw_lines(lines, width, rejections), width, positions[extract.ADDRESS])
        build_rows(cursor, positions, rejections)
    else:
        _insert_rows(cursor, extract.read_rows_after_header(lines, positions, width, rejections))
        cursor.execute(f"CREATE INDEX {ROWS}_address ON {ROWS} (address)")


def create_rows(cursor) -> None:
    # `reason` says why a row is rejected (set by the SQL path; the Python path drops them);
    # `repeat` marks a later row of an address already seen (another exercise).
    columns = ["line integer", "dematerialisation boolean", "reason text", "repeat boolean"]
    columns += [f"{f} text" for f in _text_fields()]
    _create(cursor, ROWS, ", ".join(columns))


def _text_fields() -> list[str]:
    return [f for f in StagedRow._fields if f not in ("line", "dematerialisation")]


def address_key(cell: str) -> str:
    """The address as SQL makes it (`lower(btrim(...))`), to tell a first row from a repeat."""
    return cell.strip(extract.BLANKS).lower()


def _copy_raw(cursor, lines: Iterable[tuple[int, bytes]], width: int, address: int, batch: int = 5000) -> None:
    cells = [f"f{i}" for i in range(width)]
    _create(cursor, RAW, ", ".join(["line integer", "repeat boolean"] + [f"{c} text" for c in cells]))
    # CSV with a quote character that never occurs (extract.raw_lines refuses U+0001): cells
    # are taken as they are, backslashes included; empty cells stay empty strings.
    sql = (
        f"COPY {RAW} (line, repeat, {', '.join(cells)}) FROM STDIN WITH "
        f"(FORMAT csv, DELIMITER '|', QUOTE E'\\x01', FORCE_NOT_NULL ({', '.join(cells)}))"
    )
    seen = set()  # the addresses met so far: about 70 MB for the national file
    with cursor.copy(sql) as copy:
        pending = []
        for line_no, raw in lines:
            key = address_key(raw.split(b"|", address + 1)[address].decode("utf-8"))
            pending.append(b"%d|%s|%s\n" % (line_no, b"t" if key in seen else b"f", raw))
            seen.add(key)
            if len(pending) >= batch:
                copy.write(b"".join(pending))
                pending = []
        if pending:
            copy.write(b"".join(pending))


def _insert_rows(cursor, rows: Iterable[StagedRow], batch: int = 2000) -> None:
    names = ", ".join(StagedRow._fields)
    insert = f"INSERT INTO {ROWS} ({names}, repeat) VALUES ({', '.join(['%s'] * (len(StagedRow._fields) + 1))})"
    pending = []
    seen = set()
    for row in rows:
        pending.append((*row, row.address in seen))
        seen.add(row.address)
        if len(pending) >= batch:
            cursor.executemany(insert, pending)
            pending = []
    if pending:
        cursor.executemany(insert, pending)


# --- PostgreSQL: ROWS from RAW, the SQL twin of extract.build_row -----------------------------

_BLANKS = "E' \\t\\u00a0'"
_YES = "('o', 'oui', 'y', 'yes', 'true', 'vrai', '1')"
_NO = "('n', 'non', 'no', 'false', 'faux', '0')"
_PUNCTUATION = "".join(chr(c) for c in range(32, 127) if not chr(c).isalnum() and chr(c) != " ") + "\t"


def lowered_sql(expr: str) -> str:
    """First half of `directory.normalise.fold` in SQL: no apostrophes, no accents, lower case."""
    return f"lower(public.unaccent('public.unaccent'::regdictionary, translate({expr}, '''’ʼ`', '')))"


def fold_sql(lowered: str) -> str:
    """Second half, on a column holding `lowered_sql(...)`: each run of other characters becomes
    one space. ASCII text (nearly all) takes `translate`; the regex engine, ten times slower,
    only sees the rest. Runs of up to 16 separators collapse (Python's `fold`: any run)."""
    spaces = " " * len(_PUNCTUATION)
    punctuation = _PUNCTUATION.replace("'", "''")
    separated = (
        f"CASE WHEN octet_length({lowered}) = char_length({lowered}) "
        f"THEN translate({lowered}, E'{punctuation.replace(chr(92), chr(92) * 2).replace(chr(9), chr(92) + 't')}', "
        f"'{spaces}') ELSE regexp_replace({lowered}, '[^a-z0-9]+', ' ', 'g') END"
    )
    for _ in range(4):
        separated = f"replace({separated}, '  ', ' ')"
    return f"btrim({separated})"


def _department(postcode: str) -> str:
    return (
        f"CASE WHEN {postcode} !~ '^[0-9]{{5}}$' THEN '' "
        f"WHEN left({postcode}, 2) = '20' THEN CASE WHEN {postcode} < '20200' THEN '2A' ELSE '2B' END "
        f"WHEN left({postcode}, 2) IN ('97', '98') THEN left({postcode}, 3) ELSE left({postcode}, 2) END"
    )


def _plain_address(a: str) -> str:
    """A cheap test that implies the address pattern (the regex runs only where it fails)."""
    local, domain = f"split_part({a}, '@', 1)", f"split_part({a}, '@', 2)"
    return (
        f"{local} <> '' AND split_part({a}, '@', 3) = '' AND strpos({a}, '|') = 0 "
        f"AND translate({local}, E' \\t\\n\\r\\f\\v', '') = {local} "
        f"AND translate({domain}, 'abcdefghijklmnopqrstuvwxyz0123456789-.', '') = '' "
        f"AND strpos({domain}, '.') > 1 AND right({domain}, 1) <> '.' AND strpos({domain}, '..') = 0"
    )


def _derived(c: list[str], positions: list[int]) -> str:
    """Trimmed cells, plus the address, kind, structure, street, department and exercise."""
    x = extract
    trimmed = ", ".join(f"btrim(f{p}, {_BLANKS}) AS c{i}" for i, p in enumerate(positions))
    number = ", ".join(f"NULLIF({c[i]}, '')" for i in (x.L4_NUMBER, x.L4_NUMBER_EXTRA, x.L4_STREET_TYPE, x.L4_STREET))
    street = (
        f"concat_ws(', ', NULLIF({c[x.L2]}, ''), NULLIF({c[x.L3]}, ''), "
        f"NULLIF(concat_ws(' ', {number}), ''), NULLIF({c[x.L5]}, ''))"
    )
    postcode_for_department = (
        f"CASE WHEN {c[x.POSTCODE]} <> '' THEN {c[x.POSTCODE]} "
        f"ELSE coalesce(substring({c[x.L6]} from '\\m([0-9]{{5}})\\M'), '') END"
    )
    return (
        f"SELECT line, repeat, {', '.join(c)}, lower({c[x.ADDRESS]}) AS address, upper({c[x.KIND]}) AS kind, "
        f"lower({c[x.DEMATERIALISATION]}) AS demat, "
        f"coalesce(NULLIF({c[x.STRUCTURE_NAME]}, ''), {c[x.STRUCTURE_SIGN]}) AS structure, {street} AS street, "
        f"CASE WHEN {c[x.DEPARTMENT]} <> '' THEN {c[x.DEPARTMENT]} "
        f"ELSE {_department(postcode_for_department)} END AS department, "
        f"concat_ws('|', {', '.join(c)}) AS exercise FROM (SELECT line, repeat, {trimmed} FROM {RAW} OFFSET 0) t OFFSET 0"
    )


def _reason(c: list[str]) -> str:
    x = extract
    kinds = ", ".join(f"'{k}'" for k in extract.BOX_KINDS)
    return (
        "CASE WHEN address = '' THEN 'adresse BAL vide' "
        f"WHEN NOT ({_plain_address('address')}) "
        f"AND address !~ '^[^@ \\t\\n\\r\\f\\v|]+@[a-z0-9-]+(\\.[a-z0-9-]+)+$' "
        f"THEN 'adresse BAL invalide « ' || left({c[x.ADDRESS]}, 80) || ' »' "
        f"WHEN kind NOT IN ({kinds}) THEN 'type de BAL inconnu « ' || left({c[x.KIND]}, 20) || "
        f"' » (attendu : {', '.join(extract.BOX_KINDS)})' "
        f"WHEN demat <> '' AND demat NOT IN {_YES} AND demat NOT IN {_NO} "
        f"THEN 'valeur de dématérialisation inconnue « ' || left({c[x.DEMATERIALISATION]}, 20) || ' »' END"
    )


def build_rows(cursor, positions: list[int], rejections) -> None:
    # Each `OFFSET 0` keeps a subquery whole, so that an expression its columns stand for is
    # computed once per row rather than at every place the outer query names the column.
    x = extract
    c = [f"c{i}" for i in range(len(COLUMNS))]
    name = (
        f"CASE WHEN {c[x.LAST_NAME]} <> '' THEN {c[x.LAST_NAME]} || ' ' || {c[x.FIRST_NAME]} "
        f"ELSE coalesce(NULLIF({c[x.SERVICE]}, ''), NULLIF(structure, ''), split_part(address, '@', 1)) END"
    )
    searched_parts = (name, c[x.PROFESSION_LABEL], c[x.SPECIALTY_LABEL], c[x.STRUCTURE_NAME])
    searched_parts += (c[x.STRUCTURE_SIGN], c[x.SERVICE], "street", c[x.L6])
    searched = "concat_ws(' ', " + ", ".join(f"NULLIF({part}, '')" for part in searched_parts) + ")"
    town = (
        f"CASE WHEN {c[x.POSTCODE]} <> '' AND starts_with({c[x.L6]}, {c[x.POSTCODE]}) "
        f"THEN btrim(substr({c[x.L6]}, length({c[x.POSTCODE]}) + 1), {_BLANKS}) ELSE {c[x.L6]} END"
    )
    checked = (
        f"SELECT d.*, {_reason(c)} AS reason, {lowered_sql(name)} AS name_lowered "
        f"FROM ({_derived(c, positions)}) d OFFSET 0"
    )
    cursor.execute(
        f"INSERT INTO {ROWS} ({', '.join(StagedRow._fields)}, reason, repeat) SELECT line, address, kind, "
        f"{c[x.CIVILITY]}, {c[x.LAST_NAME]}, {c[x.FIRST_NAME]}, {c[x.PROFESSION_CODE]}, {c[x.PROFESSION_LABEL]}, "
        f"{c[x.SPECIALTY_LABEL]}, structure, {c[x.SERVICE]}, street, {c[x.POSTCODE]}, {town}, department, "
        f"{c[x.COUNTRY]}, CASE WHEN demat = '' THEN NULL ELSE demat IN {_YES} END, exercise, "
        f"{fold_sql('name_lowered')}, {lowered_sql(searched)}, reason, repeat FROM ({checked}) f"
    )
    cursor.execute(f"SELECT count(*) FROM {ROWS} WHERE reason IS NOT NULL")
    total = cursor.fetchone()[0]
    cursor.execute(
        f"SELECT line, reason FROM {ROWS} WHERE reason IS NOT NULL ORDER BY line LIMIT %s", [extract.MAX_REPORTED]
    )
    rejections.extend(total, [extract.Rejected(line, reason) for line, reason in cursor.fetchall()])


# --- Both databases -------------------------------------------------------------------------


def group_by_address(cursor) -> None:
    """NEW: one row per address, the first row's cells, every exercise, all search text. Most
    addresses have one row: only those with repeats are aggregated, in place."""
    usable = "reason IS NULL"
    # An address whose first row was rejected: its next usable row comes first.
    cursor.execute(
        f"UPDATE {ROWS} SET repeat = false WHERE line IN (SELECT min(line) FROM {ROWS} WHERE {usable} AND repeat "
        f"AND address IN (SELECT address FROM {ROWS} WHERE NOT repeat AND reason IS NOT NULL) GROUP BY address)"
    )
    if postgres():
        exercises = "string_agg(r.exercise, chr(10) ORDER BY r.line)"
        search = "string_agg(r.search_piece, ' ' ORDER BY r.line)"
        source = ROWS
    else:  # SQLite's group_concat follows the order of an ordered subquery
        exercises = "group_concat(r.exercise, char(10))"
        search = "group_concat(r.search_piece, ' ')"
        source = f"(SELECT * FROM {ROWS} WHERE {usable} ORDER BY address, line)"
    cursor.execute(
        f"UPDATE {ROWS} SET exercise = m.exercises, search_piece = m.search_text FROM ("
        f"SELECT r.address, {exercises} AS exercises, {search} AS search_text FROM {source} r "
        f"WHERE r.{usable} AND r.address IN (SELECT address FROM {ROWS} WHERE repeat AND {usable}) "
        f"GROUP BY r.address) m WHERE {ROWS}.address = m.address AND NOT {ROWS}.repeat AND {ROWS}.{usable}"
    )
    columns = ", ".join(ENTRY_COLUMNS)
    cursor.execute(f"DROP VIEW IF EXISTS {NEW}")
    cursor.execute(
        f"CREATE TEMP VIEW {NEW} AS SELECT {columns}, exercise AS exercises, search_piece AS search_text "
        f"FROM {ROWS} WHERE NOT repeat AND {usable}"
    )


def classify(cursor) -> dict[str, int]:
    """DIFF(address, change) for what differs: added, changed, hosted (an address of a box of
    this operator, listed or not: its local data wins) and removed (national entries gone)."""
    change = (
        "CASE WHEN m.id IS NOT NULL THEN 'hosted' WHEN e.id IS NULL THEN 'added' "
        "WHEN e.source <> 'national' THEN 'hosted' "
        "WHEN e.exercises <> n.exercises OR e.search_text <> n.search_text OR e.name_key <> n.name_key "
        "THEN 'changed' ELSE 'same' END"
    )
    _create(cursor, DIFF, "address text, change text")
    cursor.execute(
        f"INSERT INTO {DIFF} SELECT address, change FROM (SELECT n.address AS address, {change} AS change "
        f"FROM {NEW} n LEFT JOIN {ENTRY} e ON e.address = n.address "
        f"LEFT JOIN {MAILBOX} m ON m.address = n.address) c WHERE change <> 'same' "
        f"UNION ALL SELECT e.address, 'removed' FROM {ENTRY} e WHERE e.source = 'national' AND ("
        f"NOT EXISTS (SELECT 1 FROM {NEW} n WHERE n.address = e.address) "
        f"OR EXISTS (SELECT 1 FROM {MAILBOX} m WHERE m.address = e.address))"
    )
    cursor.execute(f"SELECT change, count(*) FROM {DIFF} GROUP BY change")
    counts = dict.fromkeys(("added", "changed", "hosted", "removed"), 0)
    counts.update(dict(cursor.fetchall()))
    cursor.execute(f"SELECT count(*) FROM {NEW}")
    counts["same"] = cursor.fetchone()[0] - counts["added"] - counts["changed"] - counts["hosted"]
    return counts


def samples(cursor, limit: int = SAMPLE) -> dict[str, list[str]]:
    found = {}
    for change in ("added", "changed", "removed"):
        cursor.execute(f"SELECT address FROM {DIFF} WHERE change = %s ORDER BY address LIMIT %s", [change, limit])
        found[change] = [address for (address,) in cursor.fetchall()]
    return found


def national_count(cursor) -> int:
    cursor.execute(f"SELECT count(*) FROM {ENTRY} WHERE source = 'national'")
    return cursor.fetchone()[0]


def apply(cursor, *, rebuild_trigram: bool = False, analyse: bool = False) -> None:
    """Apply DIFF. With `rebuild_trigram` (PostgreSQL, a large change such as the first import)
    the trigram index is dropped and built again in this transaction, faster than updating it
    row by row; searches wait for the commit meanwhile instead of seeing a mix."""
    rebuild_trigram = rebuild_trigram and postgres()
    if rebuild_trigram:
        # Checked as each row goes in (entries from the file have no mailbox): no trigger
        # event may be pending when the index is built.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")
    cursor.execute(
        f"DELETE FROM {ENTRY} WHERE source = 'national' "
        f"AND address IN (SELECT address FROM {DIFF} WHERE change = 'removed')"
    )
    updated = ENTRY_COLUMNS[1:] + ["exercises", "search_text"]
    assignments = ", ".join(f"{c} = n.{c}" for c in updated)
    cursor.execute(
        f"UPDATE {ENTRY} SET {assignments} FROM {NEW} n, {DIFF} d "
        f"WHERE d.change = 'changed' AND d.address = n.address AND {ENTRY}.address = n.address"
    )
    columns = ENTRY_COLUMNS + ["exercises", "search_text"]
    cursor.execute(
        f"INSERT INTO {ENTRY} ({', '.join(columns)}, source) "
        f"SELECT {', '.join('n.' + c for c in columns)}, 'national' FROM {NEW} n "
        f"JOIN {DIFF} d ON d.address = n.address AND d.change = 'added'"
    )
    if rebuild_trigram:
        cursor.execute(f"CREATE INDEX {TRIGRAM_INDEX} ON {ENTRY} USING gin (search_text gin_trgm_ops)")
    if analyse and postgres():
        cursor.execute(f"ANALYZE {ENTRY}")
    drop_temporary(cursor)
