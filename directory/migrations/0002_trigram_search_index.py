"""The search indexes. PostgreSQL: the name index in "C" collation and the trigram index that serves "contains" search (`LIKE '%term%'`), and the
`directory_fold()`, the SQL twin of `directory.normalise.fold` used by the import's fast path.

Other databases scan and fold in Python (the slower path of the default SQLite set-up). Kept out
of the model state because SQLite has neither; `pg_trgm` and `unaccent` ship with Debian's
PostgreSQL and are trusted extensions (the database owner may create them).
"""

from django.db import migrations

FOLD = r"""
CREATE OR REPLACE FUNCTION directory_fold(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT btrim(regexp_replace(
    lower(public.unaccent('public.unaccent'::regdictionary, translate($1, '''’ʼ`', ''))),
    '[^a-z0-9]+', ' ', 'g'))
$$
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute("CREATE INDEX directory_name_c ON directory_searchrow (name_key)")
        return
    # "C" collation: byte order, so `LIKE 'prefix%'` and `ORDER BY name_key COLLATE "C"` both
    # walk this one index (the database collation is not "C").
    schema_editor.execute('CREATE INDEX IF NOT EXISTS directory_name_c ON directory_searchrow (name_key COLLATE "C")')
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    schema_editor.execute(FOLD)
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS directory_search_trgm ON directory_searchrow USING gin (search_text gin_trgm_ops)"
    )


def drop(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS directory_name_c")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS directory_search_trgm")
        schema_editor.execute("DROP FUNCTION IF EXISTS directory_fold(text)")


class Migration(migrations.Migration):
    dependencies = [("directory", "0001_entry_search_row_import_run")]
    operations = [migrations.RunPython(create, drop)]
