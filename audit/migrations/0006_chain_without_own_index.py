"""`AuditEvent.chain` loses its index of its own (issue 17: one index fewer to write with each
event): the (chain, seq) constraint leads with it and serves every look-up by it. Dropped in
place (`mssante/schema.py`), so SQLite does not re-make the table; going back leaves it out."""

import django.db.models.deletion
from django.db import migrations, models

from mssante.schema import reindex_column


def drop_chain_index(apps, schema_editor):
    reindex_column(schema_editor, apps.get_model("audit", "auditevent"), "chain", None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_french_verbose_names")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_chain_index, migrations.RunPython.noop)],
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="chain",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="audit.auditchain",
                        verbose_name="chaîne",
                    ),
                )
            ],
        )
    ]
