"""The indexes a delivery writes (issue 17): after every migration, on the test database
(PostgreSQL in CI, SQLite by default), the message, entry and delivery tables carry no index
a look-up does not need, and the triggers the migrations put on them are still there (the
index changes of mailboxes 0009 are made in place: no SQLite table is re-made)."""

from django.db import connection

from mailboxes.models import Delivery, Entry, Message


def plain_indexes(model) -> dict[str, tuple[list[str], bool]]:
    """{name: (columns, partial)} of the non-unique, non-primary-key indexes of `model`'s table."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
        partial = set()
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass AND indpred IS NOT NULL",
                [model._meta.db_table],
            )
            partial = {name for (name,) in cursor.fetchall()}
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql LIKE '%% WHERE %%'",
                [model._meta.db_table],
            )
            partial = {name for (name,) in cursor.fetchall()}
    return {
        name: (info["columns"], name in partial)
        for name, info in constraints.items()
        if info["index"] and not info["unique"] and not info["primary_key"]
    }


def test_a_message_row_writes_no_pattern_twin_and_no_sender_index(db):
    indexes = plain_indexes(Message)
    assert not [name for name in indexes if name.endswith("_like")]
    columns = sorted(tuple(cols) for cols, _ in indexes.values())
    assert ("from_address",) not in columns
    for column in ("message_id", "thread_key", "sha256"):
        assert columns.count((column,)) == 1, column


def test_an_entry_row_writes_one_index_per_lookup(db):
    indexes = plain_indexes(Entry)
    single = [cols[0] for cols, partial in indexes.values() if len(cols) == 1 and not partial]
    assert "mailbox_id" not in single and "folder_id" not in single
    partial = sorted(cols[0] for cols, is_partial in indexes.values() if is_partial and len(cols) == 1)
    assert "assigned_to_id" in partial and "done_by_id" in partial
    assert "assigned_to_id" not in single and "done_by_id" not in single


def test_a_delivery_row_has_no_index_of_its_own_on_the_message(db):
    assert ["message_id"] not in [cols for cols, _ in plain_indexes(Delivery).values()]


def test_the_triggers_of_the_entry_and_message_tables_survive(db):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        triggers = {name for (name,) in cursor.fetchall()}
    assert {"mailboxes_entry_forget_imap_uid", "webmail_message_search_on_delete"} <= triggers
