# SentRecipient now lives in mailboxes (mailboxes/migrations/0012), same table: state only.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('api', '0004_api_key_expiry'),
        ('mailboxes', '0012_sentrecipient'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='SentRecipient')],
            database_operations=[],
        ),
    ]
