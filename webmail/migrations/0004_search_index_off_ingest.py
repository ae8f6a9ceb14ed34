"""Search documents written by the indexer, off the ingest path (issue 17 item 2), folded so that
a search is accent- and case-insensitive both ways (issue 16 item 6): `webmail/search_index.py`.

PostgreSQL: the triggers that built `webmail_message_search.document` inside every delivery
transaction (the French text vector of the whole body, about 60 % of the database's time per
message) are dropped; the delete trigger stays (a message deleted, its document goes). The
documents already there are rebuilt by the indexer: every message is pending after
`mailboxes.0006` (its `search_pending` column defaults to true).

SQLite: the same table, the folded text as the document, and the same delete trigger.
"""

from django.db import migrations

POSTGRESQL = [
    "DROP TRIGGER IF EXISTS webmail_message_search_on_message ON mailboxes_message",
    "DROP TRIGGER IF EXISTS webmail_message_search_on_attachment ON mailboxes_attachment",
    "DROP FUNCTION IF EXISTS webmail_message_search_upsert()",
    "DROP FUNCTION IF EXISTS webmail_message_search_attachment()",
]

SQLITE = [
    "CREATE TABLE IF NOT EXISTS webmail_message_search (message_id integer PRIMARY KEY, document text NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS webmail_message_search_on_delete AFTER DELETE ON mailboxes_message "
    "FOR EACH ROW BEGIN DELETE FROM webmail_message_search WHERE message_id = OLD.id; END",
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS webmail_message_search_on_delete",
    "DROP TABLE IF EXISTS webmail_message_search",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in POSTGRESQL if vendor == "postgresql" else SQLITE if vendor == "sqlite" else []:
        schema_editor.execute(statement)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)
    # PostgreSQL: migrating back leaves the documents to the indexer (the old triggers are not
    # re-created; `manage.py migrate webmail 0001` with a fresh database re-creates them).


class Migration(migrations.Migration):
    dependencies = [("webmail", "0003_address_books"), ("mailboxes", "0006_message_search_queue")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
