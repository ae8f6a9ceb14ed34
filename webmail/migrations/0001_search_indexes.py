"""Full-text search of the webmail (PostgreSQL only; nothing on SQLite).

A side table `webmail_message_search(message_id, document tsvector)` holds, for each message, the
French text document of its subject, sender name and address, text body (first 200,000
characters) and attachment names, with a GIN index. PostgreSQL triggers keep it in step with
`mailboxes_message` and `mailboxes_attachment`, whatever writes them (the delivery path, a bulk
import, the admin), so no application code has to remember it. A stored document lets the
planner either read the GIN index (rare words) or walk a box by date and test each stored
document cheaply (common words): both stay fast on a box of 100,000 messages.

Also: a B-tree on entries by box and date, for searches across the folders of one box.
"""

from django.db import migrations

MESSAGE_DOCUMENT = (
    "to_tsvector('french'::regconfig, coalesce({t}subject, '') || ' ' || coalesce({t}from_name, '') || ' ' || "
    "translate(coalesce({t}from_address, ''), '@.-_', '    ') || ' ' || left(coalesce({t}text_body, ''), 200000))"
)
ATTACHMENT_DOCUMENT = "to_tsvector('french'::regconfig, translate(coalesce({t}filename, ''), '._-', '   '))"

CREATE = [
    "CREATE TABLE IF NOT EXISTS webmail_message_search "
    "(message_id bigint PRIMARY KEY, document tsvector NOT NULL)",
    "CREATE INDEX IF NOT EXISTS webmail_message_search_gin ON webmail_message_search USING gin (document)",
    f"""CREATE OR REPLACE FUNCTION webmail_message_search_upsert() RETURNS trigger AS $$
BEGIN
  INSERT INTO webmail_message_search (message_id, document)
  VALUES (NEW.id, {MESSAGE_DOCUMENT.format(t="NEW.")} || to_tsvector('french'::regconfig, coalesce((
    SELECT string_agg(translate(coalesce(filename, ''), '._-', '   '), ' ') FROM mailboxes_attachment
    WHERE message_id = NEW.id), '')))
  ON CONFLICT (message_id) DO UPDATE SET document = EXCLUDED.document;
  RETURN NULL;
END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS webmail_message_search_on_message ON mailboxes_message",
    "CREATE TRIGGER webmail_message_search_on_message AFTER INSERT OR UPDATE OF subject, from_name, "
    "from_address, text_body ON mailboxes_message FOR EACH ROW EXECUTE FUNCTION webmail_message_search_upsert()",
    f"""CREATE OR REPLACE FUNCTION webmail_message_search_attachment() RETURNS trigger AS $$
BEGIN
  UPDATE webmail_message_search SET document = document || {ATTACHMENT_DOCUMENT.format(t="NEW.")}
  WHERE message_id = NEW.message_id;
  RETURN NULL;
END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS webmail_message_search_on_attachment ON mailboxes_attachment",
    "CREATE TRIGGER webmail_message_search_on_attachment AFTER INSERT ON mailboxes_attachment "
    "FOR EACH ROW EXECUTE FUNCTION webmail_message_search_attachment()",
    """CREATE OR REPLACE FUNCTION webmail_message_search_delete() RETURNS trigger AS $$
BEGIN
  DELETE FROM webmail_message_search WHERE message_id = OLD.id;
  RETURN NULL;
END $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS webmail_message_search_on_delete ON mailboxes_message",
    "CREATE TRIGGER webmail_message_search_on_delete AFTER DELETE ON mailboxes_message "
    "FOR EACH ROW EXECUTE FUNCTION webmail_message_search_delete()",
    # Messages already stored (an existing installation).
    f"""INSERT INTO webmail_message_search (message_id, document)
SELECT m.id, {MESSAGE_DOCUMENT.format(t="m.")} || coalesce(to_tsvector('french'::regconfig,
  (SELECT string_agg(translate(coalesce(a.filename, ''), '._-', '   '), ' ') FROM mailboxes_attachment a
   WHERE a.message_id = m.id)), ''::tsvector)
FROM mailboxes_message m ON CONFLICT (message_id) DO NOTHING""",
    "CREATE INDEX IF NOT EXISTS webmail_entry_mailbox_date ON mailboxes_entry (mailbox_id, received_at DESC, id DESC)",
]

DROP = [
    "DROP TRIGGER IF EXISTS webmail_message_search_on_message ON mailboxes_message",
    "DROP TRIGGER IF EXISTS webmail_message_search_on_attachment ON mailboxes_attachment",
    "DROP TRIGGER IF EXISTS webmail_message_search_on_delete ON mailboxes_message",
    "DROP FUNCTION IF EXISTS webmail_message_search_upsert()",
    "DROP FUNCTION IF EXISTS webmail_message_search_attachment()",
    "DROP FUNCTION IF EXISTS webmail_message_search_delete()",
    "DROP TABLE IF EXISTS webmail_message_search",
    "DROP INDEX IF EXISTS webmail_entry_mailbox_date",
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in CREATE:
            schema_editor.execute(statement)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("mailboxes", "0001_initial")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
