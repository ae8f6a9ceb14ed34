"""Issue 17: the search index's queue on the message row, and cheaper bodies on PostgreSQL.

- `search_pending` (default true: every message already stored is indexed again by the
  webmail's indexer, whose documents are now folded without accents), with a partial index of
  the pending rows.
- PostgreSQL: the text and HTML bodies compressed with lz4 instead of pglz when the server has
  it (PostgreSQL ≥ 14 built with lz4, as Debian's): measured on a 139 KB text body, 7–9 ms of
  database time less per message for a 20 % larger stored value (bench/RESULTS.md, issue 17).
  Only values written from now on use it; nothing is rewritten.
"""

from django.db import migrations, models

BODIES = ("text_body", "html_body")


def lz4_bodies(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")
        if cursor.fetchone() is None:
            return
    for column in BODIES:
        schema_editor.execute(f"ALTER TABLE mailboxes_message ALTER COLUMN {column} SET COMPRESSION lz4")


def pglz_bodies(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for column in BODIES:
            schema_editor.execute(f"ALTER TABLE mailboxes_message ALTER COLUMN {column} SET COMPRESSION pglz")


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0005_imap_uids_per_folder"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="search_pending",
            field=models.BooleanField(default=True, editable=False),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("search_pending", True)), fields=["id"], name="mailboxes_message_search_queue"
            ),
        ),
        migrations.RunPython(lz4_bodies, pglz_bodies, elidable=False),
    ]
