"""Names for SQL written once as text (the statements on hot paths that the ORM would compile on
every call): a model's table and a field's column, quoted by the database's own rule. Values are
never formatted in: they stay bound parameters."""

from __future__ import annotations

from django.db import connection, models


def writes_in_with() -> bool:
    """Whether the database runs INSERT and UPDATE as parts of one `WITH` statement (PostgreSQL's
    data-modifying CTEs; SQLite has none): the hot paths then write several tables in one round
    trip."""
    return connection.vendor == "postgresql"


def table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[models.Model], name: str) -> str:
    """The quoted column of field `name` (a foreign key's `_id` column for a relation)."""
    return connection.ops.quote_name(model._meta.get_field(name).column)
