"""The trigram index of the searched text in two halves (PostgreSQL): two partial GIN indexes,
`entry_id % 2 = 0` and `= 1`, which a swapping import builds at once on two connections
(directory/swap.py). PostgreSQL 15 builds a GIN index on one core: the whole one took ~10 s of
the national import, the halves ~5 s side by side. "Contains" search names both halves
(directory.search.contains_sql), so the planner reads both indexes (a BitmapOr). Statistics
of `entry_id % 2` tell the planner that each half holds half the rows (without them it takes
a half for 0.5 % of them, and reads every match of a common fragment through the indexes
where the first 40 rows of a scan would do: contains p95 9 → 16 ms).
"""

from django.db import migrations

HALVES = (0, 1)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for half in HALVES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS directory_search_trgm_{half} ON directory_searchrow "
            f"USING gin (search_text gin_trgm_ops) WHERE entry_id % 2 = {half}",
            params=None,
        )
    schema_editor.execute(
        "CREATE STATISTICS IF NOT EXISTS directory_search_half ON (entry_id % 2) FROM directory_searchrow",
        params=None,
    )
    schema_editor.execute("DROP INDEX IF EXISTS directory_search_trgm")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS directory_search_trgm ON directory_searchrow USING gin (search_text gin_trgm_ops)"
    )
    for half in HALVES:
        schema_editor.execute(f"DROP INDEX IF EXISTS directory_search_trgm_{half}")
    schema_editor.execute("DROP STATISTICS IF EXISTS directory_search_half")


class Migration(migrations.Migration):
    dependencies = [("directory", "0003_french_verbose_names")]
    operations = [migrations.RunPython(create, drop)]
