"""A partial index of unread entries per folder: the unread counts of the left pane read it
(one correlated count per folder) instead of scanning a box's entries."""

from django.db import migrations


def create(apps, schema_editor):
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS webmail_entry_unread ON mailboxes_entry (folder_id) WHERE NOT seen"
    )


def drop(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS webmail_entry_unread")


class Migration(migrations.Migration):
    dependencies = [("webmail", "0001_search_indexes")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
