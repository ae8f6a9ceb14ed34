# ruff: noqa: S608 - the SQL of this module is assembled from its own constants, never from input
"""The SQL of an import: stage the file's rows, group them by address, compare, build, apply.

Everything runs inside the caller's transaction, so searches see the old directory until the
commit and the new one after, never a mix; a refusal rolls back and nothing is left behind.
(A swapping import stages into `shared` tables that its other connections read once that
transaction commits: directory/swap.py.)

1. ROWS holds the first usable row of each address as Python read it
   (directory.extract.light_rows): its line, its address and its trimmed cells joined in the
   canonical order (the exercise); REPEATS the later rows of an address met before.
   PostgreSQL gets them by `COPY`, other databases by batched inserts. A first import on
   PostgreSQL (`first_import`, `cells_staged`) stages the cells of ROWS as columns c0… beside
   the exercise: its builds read every row, and taking each exercise apart again in SQL cost
   both builds their share.
2. NEW (a view of ROWS) holds one row per address: the first row, every exercise joined; only
   the few addresses on several rows (REPEATS) are aggregated (LATER).
3. DIFF classifies what differs by comparing exercises: added, changed, removed, or hosted here
   (local data wins), with the id of a changed entry; a national entry whose address the file
   has on rejected rows only (HELD) is kept as it was, not removed. A re-import builds nothing for the
   unchanged addresses. Into a directory without national entries (the first import) there
   is nothing to compare: DIFF holds the hosted addresses alone, and every other address of
   NEW is added, read from NEW where it is built (`changed_rows(first=True)`).
4. CHANGES holds the entry columns of the added and changed addresses: built in SQL on
   PostgreSQL (`built_sql`: `fold_sql`, `unaccent`), in Python elsewhere by
   `directory.extract.build_row`, the reference the SQL follows (tests/directory compares them
   on PostgreSQL). A large import that swaps (directory/swap.py) builds the new tables straight
   from `built_sql` instead, search rows first.
5. Three statements apply DIFF and CHANGES to `directory_entry`.
Hand-written SQL kept in this one module, on this app's tables.
"""

from __future__ import annotations

from django.db import connection

from directory import extract

ROWS = "directory_rows"
REPEATS = "directory_repeats"
HELD = "directory_held"  # the addresses of rejected rows (`stage`): never counted gone
LATER = "directory_later"  # the later exercises of each address of REPEATS, joined
NEW = "directory_new"
DIFF = "directory_diff"
CHANGES = "directory_changes"
ENTRY = "directory_entry"
SEARCH = "directory_searchrow"
MAILBOX = "mailboxes_mailbox"
# The trigram GIN in two halves (entry_id % 2 = 0, = 1), as made by migration 0004.
TRIGRAM_INDEXES = ("directory_search_trgm_0", "directory_search_trgm_1")
NAME_INDEX = "directory_name_c"  # as made by migration 0002
ADDRESS_INDEX = "directory_address_unique"  # Entry.Meta.constraints
SAMPLE = 50
TAB = "\t"
STAGING_STATISTICS = 10  # ANALYZE samples 300 rows per unit
ADDED, CHANGED = "'added'", "'changed'"

# The columns of an entry built from the first row of its address.
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
    "exercises",
]
SEARCH_COLUMNS = ["name_key", "search_text"]
BUILT_COLUMNS = ENTRY_COLUMNS + SEARCH_COLUMNS


def postgres() -> bool:
    return connection.vendor == "postgresql"


def _create(cursor, table: str, columns: str, shared: bool = False) -> None:
    # A temporary table outlives an import run inside a larger transaction: start afresh; each
    # path drops them when done (`drop_temporary`), a rollback takes them away with it. A
    # swapping import stages into `shared` tables instead (unlogged, of the database): once its
    # first transaction commits, the connections that build the new directory side by side
    # read them (directory/swap.py); imports are serialised, so one set of them at a time.
    cursor.execute(f"DROP TABLE IF EXISTS {table}")
    cursor.execute(f"CREATE {'UNLOGGED' if shared else 'TEMP'} TABLE {table} ({columns})")


def _analyze(cursor, table: str, *columns: str) -> None:
    """Statistics of a staging table's join columns from a small sample (3,000 rows, not
    30,000): the plans need its size and that the addresses are distinct, nothing finer."""
    for column in columns:
        cursor.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS {STAGING_STATISTICS}")
    cursor.execute(f"ANALYZE {table} ({', '.join(columns)})")


def drop_temporary(cursor) -> None:
    cursor.execute(f"DROP VIEW IF EXISTS {NEW}")
    for table in (ROWS, REPEATS, HELD, LATER, DIFF, CHANGES):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def first_import(cursor) -> bool:
    """No national entry yet (the first import): nothing to compare with, every address of the
    file not hosted here is added. Asked before staging, under the import's locks."""
    cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {ENTRY} WHERE source = 'national')")
    return bool(cursor.fetchone()[0])


def cells_staged(first: bool) -> bool:
    """Whether ROWS holds the cells as columns too (c0… in the canonical order, beside the
    exercise): a first import on PostgreSQL, whose builds read every row (`_layers`)."""
    return first and postgres()


def _cell_columns() -> str:
    return "".join(f", c{i} text" for i in range(len(extract.COLUMNS)))


def stage(cursor, stream, rejections, progress=None, *, shared: bool = False, first: bool = False) -> int:
    """Fill ROWS (the first row of each address) and REPEATS (its later rows) from the file,
    and HELD with the addresses of its rejected rows; report rejected rows to `rejections`;
    raise ExtractRefused. Returns the number of addresses.
    `shared` (PostgreSQL): tables other connections read once committed (`_create`). A `first`
    import on PostgreSQL stages the cells of ROWS as columns (`cells_staged`)."""
    held: set[str] = set()

    def reject(rejected) -> None:
        if rejected.address:
            held.add(rejected.address)
        rejections(rejected)

    addresses = _stage_rows(cursor, stream, reject, progress, shared=shared, first=first)
    _create(cursor, HELD, "address text", shared)
    cursor.executemany(f"INSERT INTO {HELD} (address) VALUES (%s)", [(address,) for address in sorted(held)])
    if postgres():
        _analyze(cursor, HELD, "address")  # a few rows, usually none: the compare's join hashes them
    return addresses


def _stage_rows(cursor, stream, rejections, progress, *, shared: bool, first: bool) -> int:
    cells = cells_staged(first)
    if postgres():
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
    cursor.execute(f"DROP VIEW IF EXISTS {NEW}")
    _create(cursor, ROWS, f"line integer, address text, exercise text{_cell_columns() if cells else ''}", shared)
    _create(cursor, REPEATS, "line integer, address text, exercise text", shared)
    positions, width = extract.read_header(stream)
    rows = extract.light_rows(stream, positions, width, rejections, progress)
    if postgres():
        addresses, repeats = _copy_rows(cursor, rows, cells)
        with cursor.copy(f"COPY {REPEATS} (line, address, exercise) FROM STDIN") as copy:
            for row in repeats:
                copy.write_row(row)
        # The joins' column of the first rows only: statistics of the long exercises cost more and
        # serve no plan; the later rows are only aggregated (LATER, analysed).
        _analyze(cursor, ROWS, "address")
        return addresses
    addresses = 0
    repeats = []  # the later rows of an address met before: about 8 % of the national file
    insert = f"INSERT INTO {ROWS} (line, address, exercise) VALUES (%s, %s, %s)"
    batch = []
    for line, repeat, address, exercise in rows:
        if repeat:
            repeats.append((line, address, exercise))
            continue
        addresses += 1
        batch.append((line, address, exercise))
        if len(batch) >= 2000:
            cursor.executemany(insert, batch)
            batch = []
    cursor.executemany(insert, batch)
    cursor.executemany(insert.replace(ROWS, REPEATS), repeats)
    cursor.execute(f"CREATE INDEX {ROWS}_address ON {ROWS} (address)")
    return addresses


def _copy_text(*values) -> str:
    """One row of COPY's text format, for values holding a backslash, tab or line end."""
    escaped = (
        str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n") for v in values
    )
    return "\t".join(escaped) + "\n"


def _copy_rows(cursor, rows, cells: bool = False) -> tuple[int, list[tuple]]:
    """COPY the first row of each address into ROWS, written as COPY's text a few thousand rows
    at a time (the line is the exercise: one f-string per row, where `write_row` cost twice the
    reading); returns the number of addresses and the later rows, kept for REPEATS. With `cells`
    (`cells_staged`) each cell of the exercise is also a column: the exercise again, its `|`
    turned into COPY's tabs. (Joining the cells back into the exercise in SQL instead, where
    the entries read it, cost 0.7 s of CPU per 496k rows: `concat_ws` converts each argument.)"""
    addresses, repeats, out = 0, [], []
    with cursor.copy(f"COPY {ROWS} FROM STDIN") as copy:
        for line, repeat, address, exercise in rows:
            if repeat:
                repeats.append((line, address, exercise))
                continue
            addresses += 1
            # The address is a cell of the exercise: its check covers both.
            if "\\" in exercise or "\t" in exercise or "\r" in exercise:
                out.append(_copy_text(line, address, exercise, *(exercise.split("|") if cells else ())))
            elif cells:
                out.append(f"{line}\t{address}\t{exercise}\t{exercise.replace('|', TAB)}\n")
            else:
                out.append(f"{line}\t{address}\t{exercise}\n")
            if len(out) >= 4096:
                copy.write("".join(out))
                out.clear()
        copy.write("".join(out))
    return addresses, repeats


def group_by_address(cursor, *, shared: bool = False, first: bool = False) -> None:
    """NEW: one row per address, every exercise in file order: the first row's, then those of
    its later rows (REPEATS, aggregated alone into LATER, joined to the first rows by the view:
    rewriting every first row of several exercises cost more than joining them where read).
    Rows staged with their cells (`cells_staged`) bring them (c0…)."""
    cursor.execute(f"DROP VIEW IF EXISTS {NEW}")
    _create(cursor, LATER, "address text, exercises text", shared)
    if postgres():
        cursor.execute(
            f"INSERT INTO {LATER} SELECT address, string_agg(exercise, chr(10) ORDER BY line) "
            f"FROM {REPEATS} GROUP BY address"
        )
        _analyze(cursor, LATER, "address")  # the small side of the view's join
        newline = "chr(10)"
    else:  # SQLite's group_concat follows the order of an ordered subquery
        cursor.execute(
            f"INSERT INTO {LATER} SELECT address, group_concat(exercise, char(10)) "
            f"FROM (SELECT * FROM {REPEATS} ORDER BY address, line) GROUP BY address"
        )
        cursor.execute(f"CREATE INDEX {LATER}_address ON {LATER} (address)")
        newline = "char(10)"
    columns = "".join(f", r.c{i}" for i in range(len(extract.COLUMNS))) if cells_staged(first) else ""
    cursor.execute(
        f"CREATE {'' if shared else 'TEMP '}VIEW {NEW} AS SELECT r.line, r.address, CASE WHEN l.exercises IS NULL "
        f"THEN r.exercise ELSE r.exercise || {newline} || l.exercises END AS exercises{columns} FROM {ROWS} r "
        f"LEFT JOIN {LATER} l ON l.address = r.address"
    )


def classify(cursor, addresses: int, *, shared: bool = False, first: bool = False) -> dict[str, int]:
    """DIFF(address, change, line, exercises, id) for what differs: added, changed, hosted (an
    address of a box of this operator, listed or not: its local data wins), removed (national
    entries gone) and kept (national entries whose address the file has on rejected rows only,
    HELD: a rejected row says nothing of the box, so the entry stays as it was, unless the box
    is hosted here now); an added or changed address keeps its first line and exercises, a
    changed one its entry's id, so that the build reads DIFF alone. Returns the count of each,
    "same" (of the file's `addresses`) and "national": the national entries before (each is the
    file's, same or changed or hosted here now, or kept, or gone: removed). Into a directory
    without national entries (a `first` import, as `first_import` found before staging),
    `_classify_first`: DIFF holds the hosted addresses alone."""
    if first:
        return _classify_first(cursor, addresses, shared)
    # The one place where an address absent from the file's usable rows is removed, or kept.
    gone = (
        f"CASE WHEN h.address IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {MAILBOX} mh WHERE mh.address = e.address) "
        "THEN 'kept' ELSE 'removed' END"
    )
    change = (
        f"CASE WHEN n.address IS NULL THEN {gone} WHEN m.id IS NOT NULL THEN 'hosted' "
        "WHEN e.id IS NULL THEN 'added' WHEN e.exercises <> n.exercises THEN 'changed' ELSE 'same' END"
    )
    national = f"SELECT id, address, exercises FROM {ENTRY} WHERE source = 'national'"
    if postgres():
        # The comparison is cheap per row but its plan costs above `jit_optimize_above_cost`:
        # PostgreSQL spent 0.53 s of a re-import's 1.72 s comparison compiling it (auto_explain,
        # bench/RESULTS.md, fourteenth sitting), more than the compiled code saves.
        cursor.execute("SET LOCAL jit = off")
    _create(cursor, DIFF, "address text, change text, line integer, exercises text, id bigint", shared)
    # One pass: the file's addresses against the national entries (a full join finds both the
    # new and the gone); the mailbox join marks the addresses hosted here.
    kept = f"CASE WHEN change IN ({ADDED}, {CHANGED}) THEN"
    cursor.execute(
        f"INSERT INTO {DIFF} SELECT address, change, {kept} line END, {kept} exercises END, "
        f"CASE WHEN change = {CHANGED} THEN id END FROM ("
        f"SELECT coalesce(n.address, e.address) AS address, {change} AS change, n.line, n.exercises, e.id "
        f"FROM {NEW} n FULL JOIN ({national}) e ON e.address = n.address "
        f"LEFT JOIN {MAILBOX} m ON m.address = n.address LEFT JOIN {HELD} h ON h.address = e.address) c "
        "WHERE change <> 'same'"
    )
    # A national entry of a box now hosted here goes (its hosted entry takes over).
    cursor.execute(
        f"INSERT INTO {DIFF} (address, change) SELECT e.address, 'removed' FROM {MAILBOX} m "
        f"JOIN {ENTRY} e ON e.address = m.address "
        f"WHERE e.source = 'national' AND EXISTS (SELECT 1 FROM {NEW} n WHERE n.address = e.address)"
    )
    if postgres():
        _analyze(cursor, DIFF, "address", "change")
    cursor.execute(f"SELECT change, count(*) FROM {DIFF} GROUP BY change")
    counts = dict.fromkeys(("added", "changed", "hosted", "removed", "kept"), 0)
    counts.update(dict(cursor.fetchall()))
    counts["same"] = addresses - counts["added"] - counts["changed"] - counts["hosted"]
    counts["national"] = counts["same"] + counts["changed"] + counts["removed"] + counts["kept"]
    return counts


def _classify_first(cursor, addresses: int, shared: bool) -> dict[str, int]:
    """`classify` into a directory without national entries: nothing to compare with, so DIFF
    holds only the addresses hosted here; the others, all added, are read from NEW where they
    are built (`changed_rows`), without a copy of every exercise into DIFF."""
    _create(cursor, DIFF, "address text, change text, line integer, exercises text, id bigint", shared)
    cursor.execute(
        f"INSERT INTO {DIFF} (address, change) SELECT r.address, 'hosted' FROM {ROWS} r "
        f"JOIN {MAILBOX} m ON m.address = r.address"
    )
    if postgres():
        _analyze(cursor, DIFF, "address", "change")
    cursor.execute(f"SELECT count(*) FROM {DIFF}")
    hosted = cursor.fetchone()[0]
    return {
        "added": addresses - hosted,
        "changed": 0,
        "hosted": hosted,
        "removed": 0,
        "kept": 0,
        "same": 0,
        "national": 0,
    }


def _first_added() -> str:
    """The addresses a first import adds, as DIFF would hold them: NEW but the hosted ones,
    with their cells on PostgreSQL (`cells_staged`). (`NOT IN` a few addresses, never NULL, is
    one hashed look-up per row; `NOT EXISTS` was planned as a nested loop over DIFF: 0.06 s
    more per read of NEW.)"""
    cells = "".join(f", n.c{i}" for i in range(len(extract.COLUMNS))) if cells_staged(True) else ""
    return (
        f"SELECT n.address, {ADDED} AS change, n.line, n.exercises, CAST(NULL AS bigint) AS id{cells} FROM {NEW} n "
        f"WHERE n.address NOT IN (SELECT address FROM {DIFF})"
    )


def samples(cursor, limit: int = SAMPLE, *, first: bool = False) -> dict[str, list[str]]:
    if first:
        cursor.execute(
            f"SELECT address FROM {ROWS} r WHERE NOT EXISTS (SELECT 1 FROM {DIFF} h WHERE h.address = r.address) "
            "ORDER BY address LIMIT %s",
            [limit],
        )
        return {"added": [address for (address,) in cursor.fetchall()], "changed": [], "removed": [], "kept": []}
    found = {}
    for change in ("added", "changed", "removed", "kept"):
        cursor.execute(f"SELECT address FROM {DIFF} WHERE change = %s ORDER BY address LIMIT %s", [change, limit])
        found[change] = [address for (address,) in cursor.fetchall()]
    return found


def changed_rows(id_sql: str = "CAST(NULL AS bigint)", *, first: bool = False) -> str:
    """The added and changed addresses: change, id (`id_sql`, over DIFF d), line, address,
    exercises and, on PostgreSQL, `more`: the searched text of their later rows. A `first`
    import (`first_import`) reads them from NEW (`_first_added`) rather than DIFF, with the
    cells of their first row (c0…) on PostgreSQL (`cells_staged`)."""
    kinds = f"{ADDED}, {CHANGED}"
    columns = f"d.change, {id_sql} AS id, d.line, d.address, d.exercises"
    if cells_staged(first):
        columns += "".join(f", d.c{i}" for i in range(len(extract.COLUMNS)))
    source = f"({_first_added()})" if first else DIFF
    if not postgres():
        return f"SELECT {columns} FROM {source} d WHERE d.change IN ({kinds})"
    # Only an address of several rows has later rows: its exercises hold a line end. (Matching
    # the later rows against every added address instead hashed all of them: 0.3 s of 496k.)
    # In a first import they are LATER's addresses (a hosted one among them matches nothing).
    several = (
        f"SELECT address FROM {LATER}"
        if first
        else f"SELECT address FROM {DIFF} WHERE change IN ({kinds}) AND strpos(exercises, chr(10)) > 0"
    )
    return (
        f"SELECT {columns}, m.more FROM {source} d LEFT JOIN ({_more_sql(several)}) m ON m.address = d.address "
        f"WHERE d.change IN ({kinds})"
    )


def build_changes(cursor, *, first: bool = False) -> None:
    """CHANGES: the entry and search columns of every added or changed address."""
    types = {"dematerialisation": "boolean"}
    columns = ["change text", "id bigint"] + [f"{c} {types.get(c, 'text')}" for c in BUILT_COLUMNS]
    _create(cursor, CHANGES, ", ".join(columns))
    changed = changed_rows(first=first)
    if postgres():
        # An added entry gets its id here, from the entries' own sequence: its search row then
        # goes in with it, without joining the new entries back by address.
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [ENTRY])
        sequence = cursor.fetchone()[0].replace("'", "''")  # a name from the catalogue, quoted
        cursor.execute(
            f"INSERT INTO {CHANGES} (change, id, {', '.join(BUILT_COLUMNS)}) "
            f"SELECT change, CASE WHEN change = {ADDED} THEN nextval('{sequence}'::regclass) END, "
            f"{', '.join(BUILT_COLUMNS)} FROM ({built_sql(changed, ['change', *BUILT_COLUMNS], cells=cells_staged(first))}) b"
        )
        cursor.execute(f"ANALYZE {CHANGES}")
        return
    insert = (
        f"INSERT INTO {CHANGES} (change, {', '.join(BUILT_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * (len(BUILT_COLUMNS) + 1))})"
    )
    cursor.execute(changed)
    changes = cursor.fetchall()  # the slower path, for small directories (SQLite, the demo)
    for start in range(0, len(changes), 2000):
        cursor.executemany(insert, [_built_python(*item) for item in changes[start : start + 2000]])
    cursor.execute(f"CREATE INDEX {CHANGES}_address ON {CHANGES} (address)")


def _built_python(change: str, _id, _line, address: str, exercises: str) -> tuple:
    rows = [extract.build_row(0, line.split("|")) for line in exercises.split("\n")]
    first = rows[0]
    values = [getattr(first, c) for c in ENTRY_COLUMNS if c != "exercises"]
    return (change, *values, exercises, first.name_key, " ".join(r.search_piece for r in rows))


# --- PostgreSQL: the SQL twin of extract.build_row ------------------------------------------

_BLANKS = "E' \\t\\u00a0'"
_YES = "('o', 'oui', 'y', 'yes', 'true', 'vrai', '1')"


def unaccented_sql(column: str) -> str:
    """`flatten` in SQL, its first steps: no apostrophes, no accents (`lowered_sql` lowers the
    result), of a `column` (named three times). Text all ASCII (most cells) skips `unaccent`,
    which has no rule for an ASCII character."""
    # Three `replace` calls cost less than one `translate` (a search per character).
    without = f"replace(replace(replace({column}, '''', ''), '’', ''), '`', '')"
    return (
        f"CASE WHEN octet_length({column}) = length({column}) THEN replace(replace({column}, '''', ''), '`', '') "
        f"ELSE public.unaccent('public.unaccent'::regdictionary, {without}) END"
    )


def lowered_sql(unaccented: str) -> str:
    """The rest of `flatten` (lower case), of a column holding `unaccented_sql(...)` (named three
    times): `lower` in "C" when it is all ASCII (most rows once unaccented), which lowers ASCII
    letters as the database's locale does, without that locale's conversion of each character
    to a wide character and back; the locale's `lower` otherwise."""
    return (
        f'CASE WHEN octet_length({unaccented}) = length({unaccented}) THEN lower({unaccented} COLLATE "C") '
        f"ELSE lower({unaccented}) END"
    )


def fold_sql(lowered: str) -> str:
    """Second half, on a column holding `lowered_sql(...)`: each run of other characters becomes
    one space, none at the ends. Most names are letters and single spaces already: a regex
    match finds the others (hyphens, non-breaking spaces…), which alone are rewritten. (Measured
    on 496k names: 0.5 s of CPU, where `translate` with every ASCII punctuation took 1.6 s.)"""
    return (
        f"CASE WHEN {lowered} ~ '[^a-z0-9 ]' OR strpos({lowered}, '  ') > 0 "
        f"THEN btrim(regexp_replace({lowered}, '[^a-z0-9]+', ' ', 'g')) ELSE btrim({lowered}) END"
    )


def _department(postcode: str) -> str:
    return (
        f"CASE WHEN length({postcode}) <> 5 OR translate({postcode}, '0123456789', '') <> '' THEN '' "
        f"WHEN left({postcode}, 2) = '20' THEN CASE WHEN {postcode} < '20200' THEN '2A' ELSE '2B' END "
        f"WHEN left({postcode}, 2) IN ('97', '98') THEN left({postcode}, 3) ELSE left({postcode}, 2) END"
    )


def _cells() -> list[str]:
    """SQL of each cell: the columns c0… of `_layers`."""
    return [f"c{i}" for i in range(len(extract.COLUMNS))]


def _name_and_street() -> tuple[str, str]:
    x, c = extract, _cells()
    number = ", ".join(f"NULLIF({c[i]}, '')" for i in (x.L4_NUMBER, x.L4_NUMBER_EXTRA, x.L4_STREET_TYPE, x.L4_STREET))
    street = (
        f"concat_ws(', ', NULLIF({c[x.L2]}, ''), NULLIF({c[x.L3]}, ''), "
        f"NULLIF(concat_ws(' ', {number}), ''), NULLIF({c[x.L5]}, ''))"
    )
    structure = f"coalesce(NULLIF({c[x.STRUCTURE_NAME]}, ''), {c[x.STRUCTURE_SIGN]})"
    name = (
        f"CASE WHEN {c[x.LAST_NAME]} <> '' THEN {c[x.LAST_NAME]} || ' ' || {c[x.FIRST_NAME]} "
        f"ELSE coalesce(NULLIF({c[x.SERVICE]}, ''), NULLIF({structure}, ''), split_part(lower({c[x.ADDRESS]}), '@', 1)) END"
    )
    return name, street


def _rest_sql(name: str, street: str) -> str:
    """The searched cells of extract.search_piece after the name, over the columns c0… of
    `_layers`, with the name and the street already computed."""
    x, c = extract, _cells()
    structure = f"NULLIF({c[x.STRUCTURE_NAME]}, {name})"
    parts = (c[x.PROFESSION_LABEL], c[x.SPECIALTY_LABEL], structure, f"NULLIF({c[x.STRUCTURE_SIGN]}, {structure})")
    parts += (f"NULLIF({c[x.SERVICE]}, {name})", street, c[x.L6])
    return "concat_ws(' ', " + ", ".join(f"NULLIF({p}, '')" for p in parts) + ")"


def _piece_sql(lowered_name: str, rest: str) -> str:
    """extract.search_piece: the lowered name and the `rest` (`_rest_sql`, then
    `unaccented_sql`: a column, which `lowered_sql` names three times)."""
    return f"concat_ws(' ', {lowered_name}, NULLIF({lowered_sql(rest)}, ''))"


def _layers(changed: str, cells: bool = False) -> str:
    """The rows of `changed` (change, id, line, address, exercises, more) with their cells (c0…), name,
    street, lowered name and searched text of the first row, in layers. Each `OFFSET 0` keeps a
    layer whole, so that an expression its columns stand for is computed once per row rather
    than at every place the next layer names the column; columns a query leaves unread are not
    computed (the search rows and the entries each read their own). Rows whose cells were
    staged as columns (`cells`: a first import, `cells_staged`) are read as they are; the others'
    first exercise is taken apart here."""
    name, street = _name_and_street()
    if cells:
        columns = changed
    else:
        arrays = f"SELECT *, string_to_array(split_part(exercises, chr(10), 1), '|') AS a FROM ({changed}) d OFFSET 0"
        # One pass over the array (reading element i walks the i before it), then plain columns.
        split = ", ".join(f"a[{i + 1}] AS c{i}" for i in range(len(extract.COLUMNS)))
        columns = f"SELECT change, id, line, address, exercises, more, {split} FROM ({arrays}) r OFFSET 0"
    derived = f"SELECT *, {name} AS name, {street} AS street FROM ({columns}) r OFFSET 0"
    rest = f"SELECT *, {_rest_sql('name', 'street')} AS rest FROM ({derived}) r OFFSET 0"
    unaccented = (
        f"SELECT *, {unaccented_sql('name')} AS name_unaccented, {unaccented_sql('rest')} AS rest_unaccented "
        f"FROM ({rest}) r OFFSET 0"
    )
    lowered = f"SELECT *, {lowered_sql('name_unaccented')} AS name_lowered FROM ({unaccented}) r OFFSET 0"
    return f"SELECT *, {_piece_sql('name_lowered', 'rest_unaccented')} AS search_single FROM ({lowered}) r OFFSET 0"


def _more_sql(addresses: str) -> str:
    """(address, more): the searched text of the later rows (REPEATS) of `addresses`, in file
    order; each row built by the same layers as a first row."""
    later = (
        f"SELECT CAST(NULL AS text) AS change, CAST(NULL AS bigint) AS id, line, address, exercise AS exercises, "
        f"CAST(NULL AS text) AS more FROM {REPEATS} WHERE address IN ({addresses})"
    )
    return f"SELECT address, string_agg(search_single, ' ' ORDER BY line) AS more FROM ({_layers(later)}) l GROUP BY address"


def _values() -> dict[str, str]:
    """SQL of each built column over `_layers`."""
    x, c = extract, _cells()
    postcode = (
        f"CASE WHEN {c[x.POSTCODE]} <> '' THEN {c[x.POSTCODE]} "
        f"ELSE coalesce(substring({c[x.L6]} from '\\m([0-9]{{5}})\\M'), '') END"
    )
    town = (
        f"CASE WHEN {c[x.POSTCODE]} <> '' AND starts_with({c[x.L6]}, {c[x.POSTCODE]}) "
        f"THEN btrim(substr({c[x.L6]}, length({c[x.POSTCODE]}) + 1), {_BLANKS}) ELSE {c[x.L6]} END"
    )
    return {
        "change": "change",
        "id": "id",
        "address": "address",
        "kind": f"upper({c[x.KIND]})",
        "civility": c[x.CIVILITY],
        "last_name": c[x.LAST_NAME],
        "first_name": c[x.FIRST_NAME],
        "profession_code": c[x.PROFESSION_CODE],
        "profession_label": c[x.PROFESSION_LABEL],
        "specialty_label": c[x.SPECIALTY_LABEL],
        "structure_name": f"coalesce(NULLIF({c[x.STRUCTURE_NAME]}, ''), {c[x.STRUCTURE_SIGN]})",
        "service": c[x.SERVICE],
        "street": "street",
        "postcode": c[x.POSTCODE],
        "town": town,
        "department": f"CASE WHEN {c[x.DEPARTMENT]} <> '' THEN {c[x.DEPARTMENT]} ELSE {_department(postcode)} END",
        "country": c[x.COUNTRY],
        "dematerialisation": f"CASE WHEN {c[x.DEMATERIALISATION]} = '' THEN NULL "
        f"ELSE lower({c[x.DEMATERIALISATION]}) IN {_YES} END",
        "name_key": fold_sql("name_lowered"),
        "exercises": "exercises",
        # Several exercises (about 1 address in 12): every row's piece. (Each word once would
        # give the trigram index 7 % less text, but costs the build as much as it saves.)
        "search_text": "CASE WHEN more IS NULL THEN search_single ELSE search_single || ' ' || more END",
    }


def built_sql(changed: str, columns: list[str], *, cells: bool = False) -> str:
    """SELECT `columns` (of "change", "id", BUILT_COLUMNS) built from `changed_rows` (`cells`:
    of a first import, `changed_rows(first=True)`, whose rows bring their cells)."""
    values = _values()
    return f"SELECT {', '.join(f'{values[col]} AS {col}' for col in columns)} FROM ({_layers(changed, cells)}) f"


# --- Both databases -------------------------------------------------------------------------


def drop_indexes(cursor) -> list[str]:
    """Before a large change (PostgreSQL, such as the first import): the search indexes, the
    entries' address index and the foreign keys to the entries go, to be built again by
    `build_indexes` in the same transaction: one sorted build costs less than updating an index
    row by row, and a foreign key added back is checked by one join, not one trigger per row.
    Searches wait for the commit meanwhile instead of seeing a mix. Returns the statements that
    put everything back as it was (same names, same definitions as the migrations made)."""
    # Checked as each row goes in (no pending trigger event may remain when indexes are built).
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE confrelid = %s::regclass AND contype = 'f'",
        [ENTRY],
    )
    keys = cursor.fetchall()
    indexes = (ADDRESS_INDEX, NAME_INDEX, *TRIGRAM_INDEXES)
    restore = []
    for index in indexes:
        cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [index])
        restore.append(cursor.fetchone()[0])
    restore[1:1] = [f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}' for table, name, definition in keys]
    for table, name, _definition in keys:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for index in indexes:
        cursor.execute(f"DROP INDEX IF EXISTS {index}")
    return restore


def build_indexes(cursor, restore: list[str]) -> None:
    """Put back what `drop_indexes` took away, then refresh the planner's statistics."""
    for statement in restore:
        cursor.execute(statement)
    cursor.execute(f"ANALYZE {ENTRY}")
    cursor.execute(f"ANALYZE {SEARCH}")


def apply(cursor) -> None:
    """Apply DIFF and CHANGES to the entries and their search rows."""
    removed = (
        f"SELECT e.id FROM {ENTRY} e JOIN {DIFF} d ON d.address = e.address "
        f"WHERE d.change = 'removed' AND e.source = 'national'"
    )
    cursor.execute(f"DELETE FROM {SEARCH} WHERE entry_id IN ({removed})")
    cursor.execute(f"DELETE FROM {ENTRY} WHERE id IN ({removed})")
    assignments = ", ".join(f"{c} = c.{c}" for c in ENTRY_COLUMNS[1:])
    cursor.execute(
        f"UPDATE {ENTRY} SET {assignments} FROM {CHANGES} c "
        f"WHERE c.change = 'changed' AND {ENTRY}.address = c.address AND {ENTRY}.source = 'national'"
    )
    cursor.execute(
        f"UPDATE {SEARCH} SET name_key = c.name_key, search_text = c.search_text FROM {CHANGES} c, {ENTRY} e "
        f"WHERE c.change = 'changed' AND e.address = c.address AND {SEARCH}.entry_id = e.id"
    )
    if postgres():  # the ids were drawn by build_changes
        cursor.execute(
            f"INSERT INTO {ENTRY} (id, {', '.join(ENTRY_COLUMNS)}, source) "
            f"SELECT id, {', '.join(ENTRY_COLUMNS)}, 'national' FROM {CHANGES} WHERE change = {ADDED}"
        )
        cursor.execute(
            f"INSERT INTO {SEARCH} (entry_id, name_key, search_text) "
            f"SELECT id, name_key, search_text FROM {CHANGES} WHERE change = {ADDED}"
        )
    else:
        cursor.execute(
            f"INSERT INTO {ENTRY} ({', '.join(ENTRY_COLUMNS)}, source) "
            f"SELECT {', '.join(ENTRY_COLUMNS)}, 'national' FROM {CHANGES} WHERE change = {ADDED}"
        )
        cursor.execute(
            f"INSERT INTO {SEARCH} (entry_id, name_key, search_text) SELECT e.id, c.name_key, c.search_text "
            f"FROM {CHANGES} c JOIN {ENTRY} e ON e.address = c.address WHERE c.change = {ADDED}"
        )
    drop_temporary(cursor)
