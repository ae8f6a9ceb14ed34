"""The API's reading order of a box (api/listing.py): `Entry.api_position`, `Mailbox.api_position_next`.

On SQLite, adding these columns remakes the entries' table, which drops the trigger of migration
0005 that forgets an entry's IMAP UID when its folder changes: it is made again here.
"""

import importlib

from django.db import migrations, models

IMAP_UIDS = importlib.import_module("mailboxes.migrations.0005_imap_uids_per_folder")


def _sqlite_trigger_again(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return  # PostgreSQL alters the table in place: its triggers stay
    for statement in IMAP_UIDS.SQLITE_BACKWARD + IMAP_UIDS.SQLITE_FORWARD:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0007_merge_french_verbose_names_search_queue"),
    ]

    operations = [
        migrations.AddField(
            model_name="entry",
            name="api_position",
            field=models.PositiveBigIntegerField(
                blank=True, editable=False, null=True, verbose_name="place dans l'ordre de lecture de l'API"
            ),
        ),
        migrations.AddField(
            model_name="mailbox",
            name="api_position_next",
            field=models.PositiveBigIntegerField(
                default=1, editable=False, verbose_name="prochaine place dans l'ordre de lecture de l'API"
            ),
        ),
        migrations.AddConstraint(
            model_name="entry",
            constraint=models.UniqueConstraint(
                fields=("mailbox", "api_position"), name="entry_mailbox_api_position_unique"
            ),
        ),
        migrations.RunPython(_sqlite_trigger_again, migrations.RunPython.noop),
    ]
