# ruff: noqa: S608 - the SQL of this module is assembled from the catalogue's names, never from input
"""A large import (PostgreSQL, outside any transaction) builds the new directory in fresh tables
beside the live ones and swaps them in, so searches keep reading the old directory throughout.

1. In the import's transaction, once the file is staged and compared (directory/staging.py,
   into `shared` tables: unlogged tables of the database, not the session's temporary ones):
   `create` empty `directory_entry_next` / `directory_searchrow_next` shaped like the live tables
   (columns, defaults, identity), with their foreign keys to the mailboxes; `reserve_ids` (a
   block of the entries' sequence: an added entry's id is its base plus the line of its first
   row). The transaction commits: every connection now reads the staged rows.
2. `build_next`: this connection builds the search rows (`fill_search`: the kept national
   entries' as they are, then the added and changed addresses', built in SQL) while another
   (a thread) builds the entries (`fill_entries`: kept, then added and changed, same ids), their
   indexes and statistics — the two cores busy. Once the search rows are committed, each half
   of their trigram index on a connection of its own (a thread: the longest builds) while this
   one builds their other indexes. Then the primary keys, the key from search rows to entries
   and the search rows' statistics; the staged tables go. Hosted entries are copied at the swap.
3. `swap` (one short transaction): lock the live tables, copy the hosted entries as they are
   now, drop the old tables, rename the new ones and every index, constraint, statistics object
   and sequence to the names the migrations made (Django's state and later migrations see the same schema).

Only `directory_searchrow` refers to the entries (checked: `referrers`); another table pointing
at them would be left dangling, so the import then keeps the in-transaction path.
"""

from __future__ import annotations

import re
import threading
import time

from django.db import connection, connections, transaction

from directory import hosted
from directory.staging import DIFF, ENTRY, ENTRY_COLUMNS, ROWS, SEARCH, built_sql, changed_rows, drop_temporary

NEXT = "_next"
IMPORT_LOCK_KEY = 1_202_613  # session advisory lock: one swapping import at a time
TABLES = (ENTRY, SEARCH)
SEARCH_ROW_COLUMNS = "entry_id, mailbox_id, name_key, search_text"
KEYS = {"p": "PRIMARY KEY", "u": "UNIQUE"}  # constraints an index stands for


def usable() -> bool:
    """The swap needs PostgreSQL, committed new tables (so no caller's transaction) and no other
    table referring to the entries or search rows than the search rows themselves."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    return referrers() == {SEARCH}


def referrers() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
            "AND confrelid IN (%s::regclass, %s::regclass)",
            TABLES,
        )
        return {table for (table,) in cursor.fetchall()}


def lock_imports() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [IMPORT_LOCK_KEY])


def hold_imports() -> None:
    """Any import's transaction: wait for a swapping import to end (its session holds the lock),
    so no import writes the live tables between another's reading and its swap."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [IMPORT_LOCK_KEY])


def unlock_imports() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [IMPORT_LOCK_KEY])


def drop_next(cursor) -> None:
    cursor.execute(f"DROP TABLE IF EXISTS {SEARCH}{NEXT}, {ENTRY}{NEXT}")


def _foreign_keys(cursor, table: str) -> list[tuple[str, str]]:
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype = 'f' ORDER BY conname",
        [table],
    )
    return cursor.fetchall()


def _indexes(cursor, table: str) -> list[tuple[str, str, str]]:
    """(name, definition, constraint type or '') of each index of `table`."""
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), coalesce(c.contype::text, '') "
        "FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid "
        "WHERE i.indrelid = %s::regclass ORDER BY 1",
        [table],
    )
    return cursor.fetchall()


def _statistics(cursor, table: str) -> dict[str, str]:
    """{columns: name} of the extended statistics of `table` (migration 0004's `entry_id % 2`).
    `create` copies them (LIKE … INCLUDING ALL) under names PostgreSQL chooses."""
    cursor.execute(
        "SELECT pg_get_statisticsobjdef_columns(oid), stxname FROM pg_statistic_ext WHERE stxrelid = %s::regclass",
        [table],
    )
    return dict(cursor.fetchall())


def _temporary(name: str) -> str:
    return f"{name[:50]}{NEXT}"


def create(cursor) -> None:
    """Empty new tables beside the live ones, with their foreign keys to other tables."""
    drop_next(cursor)
    for table in TABLES:
        cursor.execute(f"CREATE TABLE {table}{NEXT} (LIKE {table} INCLUDING ALL EXCLUDING INDEXES)")
        for name, definition in _foreign_keys(cursor, table):
            if f"REFERENCES {ENTRY}(" not in definition:
                cursor.execute(f'ALTER TABLE {table}{NEXT} ADD CONSTRAINT "{_temporary(name)}" {definition}')


def reserve_ids(cursor) -> int:
    """Reserve a block of the entries' sequence for the added entries: an added entry's id is
    the block's base plus the line of its first row, so that the search rows (built first) and
    the entries (built later, beside the trigram index) agree without a table of ids. The share
    lock keeps every insert of an entry, hence every other draw, out meanwhile."""
    cursor.execute(f"LOCK TABLE {ENTRY} IN SHARE MODE")
    cursor.execute(f"SELECT coalesce(max(line), 0) FROM {ROWS}")
    top = int(cursor.fetchone()[0])
    cursor.execute("SELECT setval(%s::regclass, nextval(%s::regclass) + %s) - %s", [_serial(), _serial(), top, top])
    return int(cursor.fetchone()[0])


def _built_rows(base: int, first: bool) -> str:
    """The added and changed addresses (`staging.changed_rows`): a changed entry keeps its id
    (DIFF's), an added one takes the base plus its line (`reserve_ids`)."""
    return changed_rows(f"coalesce(d.id, {int(base)} + d.line)", first=first)


# The national entries the file keeps (neither removed nor changed): copied as they are.
KEPT = (
    f"e.source = 'national' AND NOT EXISTS (SELECT 1 FROM {DIFF} d WHERE d.address = e.address "
    f"AND d.change IN ('removed', 'changed'))"
)


def fill_search(cursor, base: int, first: bool = False) -> None:
    """The search rows: the kept national entries' as they are, then those of the added and
    changed addresses, built in SQL; the trigram index starts as soon as they are committed."""
    cursor.execute("SET LOCAL work_mem = '256MB'")
    cursor.execute(
        f"INSERT INTO {SEARCH}{NEXT} ({SEARCH_ROW_COLUMNS}) SELECT s.entry_id, s.mailbox_id, s.name_key, "
        f"s.search_text FROM {SEARCH} s JOIN {ENTRY} e ON e.id = s.entry_id WHERE {KEPT}"
    )
    built = built_sql(_built_rows(base, first), ["id", "name_key", "search_text"], cells=first)
    cursor.execute(
        f"INSERT INTO {SEARCH}{NEXT} ({SEARCH_ROW_COLUMNS}) SELECT id, NULL, name_key, search_text FROM ({built}) b"
    )


def fill_entries(cursor, base: int, first: bool = False) -> None:
    """The entries: the kept national ones as they are, then the added and changed ones (same
    ids as their search rows)."""
    cursor.execute("SET LOCAL work_mem = '256MB'")  # as the import's first transaction
    cursor.execute(f"INSERT INTO {ENTRY}{NEXT} SELECT e.* FROM {ENTRY} e WHERE {KEPT}")
    columns = ", ".join(ENTRY_COLUMNS)
    built = built_sql(_built_rows(base, first), ["id", *ENTRY_COLUMNS], cells=first)
    cursor.execute(
        f"INSERT INTO {ENTRY}{NEXT} (id, {columns}, source) SELECT id, {columns}, 'national' FROM ({built}) b"
    )


def _serial() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [ENTRY])
        return cursor.fetchone()[0]


def _on_own_connection(work, errors: list[BaseException], phases: dict, phase: str) -> None:
    """Run `work(cursor)` on this thread's own connection (another backend), then close it."""
    began = time.monotonic()
    try:
        with connections["default"].cursor() as cursor:
            work(cursor)
    except BaseException as exc:  # reported to the importing thread
        errors.append(exc)
    finally:
        connections["default"].close()
        phases[phase] = round(time.monotonic() - began, 3)


def _build(statement: str):
    """A thread's work: one index."""

    def work(cursor):
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute(statement)

    return work


def _entries(base: int, first: bool, statements: list[str], phases: dict):
    """A thread's work: the entries (their own transaction), their indexes, their statistics."""

    def work(cursor):
        began = time.monotonic()
        with transaction.atomic():
            fill_entries(cursor, base, first)
        phases["entries"] = round(time.monotonic() - began, 3)
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for statement in statements:
            cursor.execute(statement)
        cursor.execute(f"ANALYZE {ENTRY}{NEXT}")

    return work


def _started(work, errors: list[BaseException], phases: dict, phase: str) -> threading.Thread:
    thread = threading.Thread(target=_on_own_connection, args=(work, errors, phases, phase))
    thread.start()
    return thread


def _gin(statement: str) -> bool:
    return " USING gin " in statement


def index_plan(cursor) -> tuple[list[str], list[str], list[str]]:
    """(statements of the entries' indexes, of the search rows' indexes, constraints after both)."""
    plans: dict[str, list[str]] = {table: [] for table in TABLES}
    after = []
    for table in TABLES:
        for name, definition, contype in _indexes(cursor, table):
            built = re.sub(
                rf"INDEX {re.escape(name)} ON (\S+\.)?{table} ",
                f"INDEX {_temporary(name)} ON {table}{NEXT} ",
                definition,
            )
            plans[table].append(built)
            if contype in KEYS:
                temporary = _temporary(name)
                after.append(
                    f"ALTER TABLE {table}{NEXT} ADD CONSTRAINT {temporary} {KEYS[contype]} USING INDEX {temporary}"
                )
        for name, definition in _foreign_keys(cursor, table):
            if f"REFERENCES {ENTRY}(" in definition:
                definition = definition.replace(f"REFERENCES {ENTRY}(", f"REFERENCES {ENTRY}{NEXT}(")
                after.append(f'ALTER TABLE {table}{NEXT} ADD CONSTRAINT "{_temporary(name)}" {definition}')
    # The trigram GIN halves (the longest builds) first: each gets a connection of its own.
    plans[SEARCH].sort(key=lambda statement: not _gin(statement))
    return plans[ENTRY], plans[SEARCH], after


def build_next(base: int, phases: dict, first: bool = False) -> None:
    """After the import's first commit (the staged tables, `shared`, readable by every
    connection; the new tables empty): the search rows on this connection while another builds
    the entries, their indexes and statistics — both cores busy; once the search rows are
    committed, each half of their trigram index on a connection of its own (a thread each:
    PostgreSQL 15 builds one GIN index on one core) while this one builds their other indexes;
    then primary keys, the key from search rows to entries, statistics, and the staged tables
    go. `phases` gets the seconds of each part."""
    with connection.cursor() as cursor:
        entries, search, after = index_plan(cursor)
    gins = [statement for statement in search if _gin(statement)]
    errors: list[BaseException] = []
    threads = [
        _started(_entries(base, first, entries, phases), errors, phases, "entries and their indexes (own connection)")
    ]
    try:
        began = time.monotonic()
        with transaction.atomic(), connection.cursor() as cursor:
            fill_search(cursor, base, first)
        phases["search rows"] = round(time.monotonic() - began, 3)
        threads += [
            _started(_build(statement), errors, phases, f"search index {number} (own connection)")
            for number, statement in enumerate(gins, 1)
        ]
        began = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '512MB'")
            for statement in search[len(gins) :]:
                cursor.execute(statement)
        phases["other search indexes"] = round(time.monotonic() - began, 3)
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    with connection.cursor() as cursor:
        for statement in after:
            cursor.execute(statement)
        # After the trigram builds: ANALYZE's lock (share update exclusive) waits for CREATE
        # INDEX's (share), so it cannot run beside them.
        cursor.execute(f"ANALYZE {SEARCH}{NEXT}")
        drop_temporary(cursor)


def swap(cursor) -> None:
    """Inside a transaction: the new tables take the place of the live ones, with their names."""
    hosted.lock_directory()
    cursor.execute(f"LOCK TABLE {ENTRY}, {SEARCH} IN ACCESS EXCLUSIVE MODE")
    # Hosted entries as they are now (the mirror kept writing the live tables meanwhile); a
    # national entry of an address hosted since the import read it gives way.
    hosted_here = f"SELECT address FROM {ENTRY} WHERE source = 'hosted'"
    cursor.execute(
        f"DELETE FROM {SEARCH}{NEXT} WHERE entry_id IN (SELECT id FROM {ENTRY}{NEXT} WHERE address IN ({hosted_here}))"
    )
    cursor.execute(f"DELETE FROM {ENTRY}{NEXT} WHERE address IN ({hosted_here})")
    cursor.execute(f"INSERT INTO {ENTRY}{NEXT} SELECT * FROM {ENTRY} WHERE source = 'hosted'")
    cursor.execute(
        f"INSERT INTO {SEARCH}{NEXT} ({SEARCH_ROW_COLUMNS}) SELECT s.entry_id, s.mailbox_id, s.name_key, "
        f"s.search_text FROM {SEARCH} s JOIN {ENTRY} e ON e.id = s.entry_id WHERE e.source = 'hosted'"
    )
    renames = []
    for table in TABLES:
        for name, _definition, contype in _indexes(cursor, table):
            if contype in KEYS:
                renames.append(f"ALTER TABLE {table} RENAME CONSTRAINT {_temporary(name)} TO {name}")
            else:
                renames.append(f"ALTER INDEX {_temporary(name)} RENAME TO {name}")
        for name, _definition in _foreign_keys(cursor, table):
            renames.append(f'ALTER TABLE {table} RENAME CONSTRAINT "{_temporary(name)}" TO "{name}"')
    statistics = [
        f'ALTER STATISTICS "{copied}" RENAME TO "{_statistics(cursor, table)[columns]}"'
        for table in TABLES
        for columns, copied in _statistics(cursor, f"{table}{NEXT}").items()
    ]
    sequence = _serial()
    cursor.execute(f"SELECT setval(pg_get_serial_sequence('{ENTRY}{NEXT}', 'id'), nextval(%s::regclass))", [sequence])
    cursor.execute(f"DROP TABLE {SEARCH}, {ENTRY}")
    for table in TABLES:
        cursor.execute(f"ALTER TABLE {table}{NEXT} RENAME TO {table}")
    for statement in renames + statistics:
        cursor.execute(statement)
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [ENTRY])
    cursor.execute(f"ALTER SEQUENCE {cursor.fetchone()[0]} RENAME TO {sequence.split('.')[-1]}")
