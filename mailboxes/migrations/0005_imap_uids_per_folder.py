"""IMAP UIDs per folder (issue 11): `Folder.imap_uid_next`, `Entry.imap_uid`, `Entry.imap_deleted`.

Two database triggers keep them true whatever code writes entries (the delivery path, the
webmail, the IMAP server, future code), without any of it knowing about IMAP:
- when an entry's folder changes, its UID (and IMAP \\Deleted mark) is forgotten, so that the
  entry gets a new, higher UID in its new folder (clients/imap/uids.py gives it);
- on PostgreSQL, every insert or delete of an entry, and every change of its folder or flags,
  sends `NOTIFY mss_imap, '<folder id>'` (deduplicated per transaction by PostgreSQL), which wakes
  the IMAP sessions idling on that folder (giving UIDs, a column of its own, sends nothing).
"""

from django.db import migrations, models

POSTGRESQL_FORWARD = [
    """
    CREATE OR REPLACE FUNCTION mailboxes_entry_forget_imap_uid() RETURNS trigger AS $$
    BEGIN
        NEW.imap_uid := NULL;
        NEW.imap_deleted := FALSE;
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER mailboxes_entry_forget_imap_uid
    BEFORE UPDATE OF folder_id ON mailboxes_entry
    FOR EACH ROW WHEN (OLD.folder_id IS DISTINCT FROM NEW.folder_id)
    EXECUTE FUNCTION mailboxes_entry_forget_imap_uid()
    """,
    """
    CREATE OR REPLACE FUNCTION mailboxes_entry_notify_imap() RETURNS trigger AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            PERFORM pg_notify('mss_imap', OLD.folder_id::text);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM pg_notify('mss_imap', NEW.folder_id::text);
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER mailboxes_entry_notify_imap
    AFTER INSERT OR DELETE
    OR UPDATE OF folder_id, seen, answered, flagged, is_draft, forwarded, imap_deleted ON mailboxes_entry
    FOR EACH ROW EXECUTE FUNCTION mailboxes_entry_notify_imap()
    """,
]
POSTGRESQL_BACKWARD = [
    "DROP TRIGGER IF EXISTS mailboxes_entry_notify_imap ON mailboxes_entry",
    "DROP FUNCTION IF EXISTS mailboxes_entry_notify_imap()",
    "DROP TRIGGER IF EXISTS mailboxes_entry_forget_imap_uid ON mailboxes_entry",
    "DROP FUNCTION IF EXISTS mailboxes_entry_forget_imap_uid()",
]
SQLITE_FORWARD = [
    """
    CREATE TRIGGER mailboxes_entry_forget_imap_uid
    AFTER UPDATE OF folder_id ON mailboxes_entry
    FOR EACH ROW WHEN OLD.folder_id IS NOT NEW.folder_id
    BEGIN
        UPDATE mailboxes_entry SET imap_uid = NULL, imap_deleted = 0 WHERE id = NEW.id;
    END
    """,
]
SQLITE_BACKWARD = ["DROP TRIGGER IF EXISTS mailboxes_entry_forget_imap_uid"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0004_box_rules_absence_forwarding"),
    ]

    operations = [
        migrations.AddField(
            model_name="entry",
            name="imap_deleted",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="entry",
            name="imap_uid",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="folder",
            name="imap_uid_next",
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.AddConstraint(
            model_name="entry",
            constraint=models.UniqueConstraint(fields=("folder", "imap_uid"), name="entry_folder_imap_uid_unique"),
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRESQL_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
