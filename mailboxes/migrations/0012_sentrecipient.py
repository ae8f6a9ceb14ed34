# The API's SentRecipient (api/migrations/0003) moves to mailboxes, which the webmail also reads:
# its table stays `api_sentrecipient`, so this changes Django's state only (no SQL).

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('mailboxes', '0011_message_reply_to_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='SentRecipient',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('address', models.CharField(max_length=254, verbose_name='adresse')),
                        ('message_id', models.CharField(blank=True, max_length=998, verbose_name='Message-ID')),
                        ('code', models.CharField(blank=True, max_length=60, verbose_name='code du refus')),
                        ('reason', models.CharField(blank=True, max_length=500, verbose_name='raison du refus')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='enregistré le')),
                        ('copy', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='mailboxes.message', verbose_name='copie du destinataire')),
                        ('sent', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='mailboxes.message', verbose_name='message envoyé')),
                    ],
                    options={
                        'verbose_name': "destinataire d'un envoi",
                        'verbose_name_plural': 'destinataires des envois',
                        'db_table': 'api_sentrecipient',
                        'constraints': [models.UniqueConstraint(fields=('sent', 'address'), name='sentrecipient_unique')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
