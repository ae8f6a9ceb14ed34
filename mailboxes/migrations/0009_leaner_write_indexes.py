"""Fewer indexes to write with each message (issue 17): see `mssante/schema.py`.

- `Message.message_id`, `thread_key`, `sha256` and `Attachment.sha256`: the plain B-tree stays
  (renamed to a name of the model's `Meta.indexes`), PostgreSQL's `varchar_pattern_ops` twin
  goes (no LIKE is ever asked of these columns); `Message.from_address` loses both (its
  searches are ILIKE and `iexact`, which a B-tree does not serve).
- `Entry.mailbox`, `Entry.folder` and `Delivery.message` lose the index of their own: the
  composite indexes and constraints that lead with them serve every look-up by them.
- `Entry.assigned_to` and `Entry.done_by` get partial indexes (only where set) instead of full
  ones: an entry written without them no longer costs an index entry.

The state changes are Django's own (`AlterField`, `AddIndex`); the database changes rename or
drop in place, so no index is built again on PostgreSQL and no SQLite table is re-made (which
would drop its triggers). Going back leaves the leaner indexes in place.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from mssante.schema import reindex_column

NEW_INDEXES = {
    ("message", "message_id"): models.Index(fields=["message_id"], name="message_message_id"),
    ("message", "thread_key"): models.Index(fields=["thread_key"], name="message_thread_key"),
    ("message", "sha256"): models.Index(fields=["sha256"], name="message_sha256"),
    ("message", "from_address"): None,
    ("attachment", "sha256"): models.Index(fields=["sha256"], name="attachment_sha256"),
    ("entry", "mailbox"): None,
    ("entry", "folder"): None,
    ("entry", "assigned_to"): models.Index(
        fields=["assigned_to"], condition=models.Q(assigned_to__isnull=False), name="entry_assigned_to"
    ),
    ("entry", "done_by"): models.Index(
        fields=["done_by"], condition=models.Q(done_by__isnull=False), name="entry_done_by"
    ),
    ("delivery", "message"): None,
}


def leaner_indexes(apps, schema_editor):
    for (model_name, field), index in NEW_INDEXES.items():
        reindex_column(schema_editor, apps.get_model("mailboxes", model_name), field, index)


def foreign_key(to, on_delete, **options):
    return models.ForeignKey(db_index=False, on_delete=on_delete, to=to, **options)


STATE = [
    migrations.AlterField(model_name="attachment", name="sha256", field=models.CharField(max_length=64)),
    migrations.AlterField(
        model_name="delivery",
        name="message",
        field=foreign_key("mailboxes.message", django.db.models.deletion.CASCADE, related_name="deliveries"),
    ),
    migrations.AlterField(
        model_name="entry",
        name="assigned_to",
        field=foreign_key(
            settings.AUTH_USER_MODEL,
            django.db.models.deletion.SET_NULL,
            blank=True,
            null=True,
            related_name="assigned_entries",
        ),
    ),
    migrations.AlterField(
        model_name="entry",
        name="done_by",
        field=foreign_key(
            settings.AUTH_USER_MODEL, django.db.models.deletion.SET_NULL, blank=True, null=True, related_name="+"
        ),
    ),
    migrations.AlterField(
        model_name="entry",
        name="folder",
        field=foreign_key("mailboxes.folder", django.db.models.deletion.PROTECT, related_name="entries"),
    ),
    migrations.AlterField(
        model_name="entry",
        name="mailbox",
        field=foreign_key("mailboxes.mailbox", django.db.models.deletion.CASCADE, related_name="entries"),
    ),
    migrations.AlterField(model_name="message", name="from_address", field=models.CharField(max_length=254)),
    migrations.AlterField(model_name="message", name="message_id", field=models.CharField(max_length=998)),
    migrations.AlterField(model_name="message", name="sha256", field=models.CharField(max_length=64)),
    migrations.AlterField(model_name="message", name="thread_key", field=models.CharField(blank=True, max_length=998)),
    *(
        migrations.AddIndex(model_name=model_name, index=index)
        for (model_name, _), index in NEW_INDEXES.items()
        if index is not None
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0008_api_reading_order"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(leaner_indexes, migrations.RunPython.noop)],
            state_operations=STATE,
        )
    ]
