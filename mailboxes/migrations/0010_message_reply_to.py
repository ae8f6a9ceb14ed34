"""`Message.reply_to`: the first address of a received message's `Reply-To:` (RULES.md §6: the
return address of another operator's applicative box), where a patient's reply goes.

The column is added by `ALTER TABLE … ADD COLUMN … NOT NULL DEFAULT ''`, the same statement on
PostgreSQL (no rewrite of the table: a constant default is kept in the catalogue) and SQLite,
where Django's `AddField` of a NOT NULL column would re-make the table and drop the triggers
our migrations put on it. Every insert names the column, so its default is never relied on.
"""

from django.db import migrations, models

ADD = "ALTER TABLE mailboxes_message ADD COLUMN reply_to varchar(254) NOT NULL DEFAULT ''"
DROP = "ALTER TABLE mailboxes_message DROP COLUMN reply_to"


class Migration(migrations.Migration):
    dependencies = [("mailboxes", "0009_leaner_write_indexes")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD, DROP)],
            state_operations=[
                migrations.AddField(
                    model_name="message", name="reply_to", field=models.CharField(blank=True, max_length=254)
                )
            ],
        )
    ]
