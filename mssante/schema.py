"""Index changes made in place by migrations, through the schema editor's public API.

Django would apply "this field loses `db_index`, the model gains a named `Index`" as an
`AlterField` then an `AddIndex`: on PostgreSQL the field's index is dropped and the same
index built again (minutes on a large message table, writes blocked meanwhile), and on SQLite
the whole table is re-made, which drops the triggers our migrations put on it. A migration
that says so in its state (`SeparateDatabaseAndState`) instead runs `reindex_column` on the
database: the existing index is renamed to the new name when it is the same index, and only
the indexes no longer wanted are dropped.
"""

from __future__ import annotations

from django.db import models


def column_indexes(schema_editor, table: str, column: str) -> list[str]:
    """The names of the plain (not unique, not primary key) indexes on exactly `column`."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return sorted(
        name
        for name, info in constraints.items()
        if info["index"] and not info["unique"] and not info["primary_key"] and info["columns"] == [column]
    )


def reindex_column(schema_editor, model, field: str, new: models.Index | None = None) -> None:
    """Leave `model.field`'s column with `new` as its only plain index (none when `new` is None).

    PostgreSQL's `varchar_pattern_ops` twin (`…_like`) of a `db_index=True` text field goes; the
    plain index becomes `new` by a rename when `new` is the same index (one column, no
    condition), otherwise it goes and `new` is built. Safe to run again."""
    column = model._meta.get_field(field).column
    existing = column_indexes(schema_editor, model._meta.db_table, column)
    plain = [name for name in existing if not name.endswith("_like") and (new is None or name != new.name)]
    for name in existing:
        if name.endswith("_like"):
            schema_editor.remove_index(model, models.Index(fields=[field], name=name))
    if new is None or new.name in existing:
        for name in plain:
            schema_editor.remove_index(model, models.Index(fields=[field], name=name))
        return
    if plain and new.condition is None and list(new.fields) == [field]:
        schema_editor.rename_index(model, models.Index(fields=[field], name=plain.pop(0)), new)
    else:
        schema_editor.add_index(model, new)
    for name in plain:
        schema_editor.remove_index(model, models.Index(fields=[field], name=name))
