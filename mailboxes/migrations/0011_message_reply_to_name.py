"""`Message.reply_to_name`: the display name of a received message's `Reply-To:`
(`"Secrétariat cardio" <cardio@…>`), shown in the reading pane beside the address and kept in
the To of a reply.

Added as 0010 added `reply_to`: `ALTER TABLE … ADD COLUMN … NOT NULL DEFAULT ''`, the same
statement on PostgreSQL (no rewrite of the table: a constant default is kept in the catalogue)
and SQLite, where Django's `AddField` of a NOT NULL column would re-make the table and drop the
triggers our migrations put on it. Every insert names the column, so its default is never
relied on. Messages stored before keep an empty name (their address is shown alone, as before):
re-reading every stored file to fill it would cost a pass over the whole store for a label.
"""

from django.db import migrations, models

ADD = "ALTER TABLE mailboxes_message ADD COLUMN reply_to_name varchar(300) NOT NULL DEFAULT ''"
DROP = "ALTER TABLE mailboxes_message DROP COLUMN reply_to_name"


class Migration(migrations.Migration):
    dependencies = [("mailboxes", "0010_message_reply_to")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD, DROP)],
            state_operations=[
                migrations.AddField(
                    model_name="message", name="reply_to_name", field=models.CharField(blank=True, max_length=300)
                )
            ],
        )
    ]
