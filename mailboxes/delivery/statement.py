"""The rows of one delivery in one PostgreSQL statement (issue 17: fewer round trips).

On PostgreSQL the delivery transaction is three statements instead of nine: the ids the rows
refer to are reserved from their sequences (`reserve_ids`), the audit chain head is taken
(`audit.chain.link_deferred`), and every INSERT and UPDATE of the delivery then runs as the
data-modifying parts of one `WITH … SELECT` (`DeliveryStatement`). Nothing is private: the
columns and values come from each model's public `_meta` fields and their documented
`pre_save` / `get_db_prep_save`, as the ORM itself writes them; the SQL is built from table and
column names only, every value a bound parameter. Django creates PostgreSQL foreign keys
`DEFERRABLE INITIALLY DEFERRED`, so the rows may refer to each other within the statement.
Other databases keep the ORM's `bulk_create` (mailboxes/delivery/writing.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models


def uses_one_statement() -> bool:
    return connection.vendor == "postgresql"


def _sequence_of(model: type[models.Model]) -> str:
    return f"pg_get_serial_sequence('\"{model._meta.db_table}\"', '{model._meta.pk.column}')"


def reserve_ids(model: type[models.Model], count: int, *others: tuple[type[models.Model], int]) -> list[list[int]]:
    """`count` new ids of `model` (and of each (model, count) of `others`) from their sequences,
    in one round trip: the rows can then be written, and referred to, in one statement."""
    wanted = [(model, count), *others]
    columns = ", ".join(
        f"ARRAY(SELECT nextval({_sequence_of(m)}) FROM generate_series(1, %s))"  # noqa: S608 - model names
        for m, _ in wanted
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns}", [n for _, n in wanted])
        return [list(ids) for ids in cursor.fetchone()]


class DeliveryStatement:
    """Data-modifying parts (`name AS (INSERT …)`) gathered, then run as one statement."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list = []

    def insert(self, model: type[models.Model], rows: Sequence[models.Model], *, with_pk: bool) -> None:
        """An INSERT of `rows` (nothing when empty). `with_pk`: the rows carry reserved ids;
        otherwise the id column is left to its default."""
        if not rows:
            return
        fields = [f for f in model._meta.concrete_fields if f.column and (with_pk or not f.primary_key)]
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields if f.column)
        one_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        for row in rows:
            self.params += [f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields]
        values = ", ".join([one_row] * len(rows))
        table = connection.ops.quote_name(model._meta.db_table)
        self.add(f"INSERT INTO {table} ({columns}) VALUES {values}", [])  # noqa: S608 - names from the model

    def add(self, sql: str, params: list) -> None:
        """Any data-modifying statement (INSERT, UPDATE) as one more part."""
        self.parts.append(sql)
        self.params += params

    def run(self, returning: str = "", params: list | None = None):
        """Run every part in one statement; `returning` is the final SELECT over the parts
        (named `p0`, `p1`, … in the order they were added), its first row returned."""
        names = [f"p{i}" for i in range(len(self.parts))]
        with_clause = ", ".join(f"{name} AS ({sql})" for name, sql in zip(names, self.parts, strict=True))
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {with_clause} {returning or 'SELECT 1'}", [*self.params, *(params or [])])
            return cursor.fetchone()

    @property
    def last_name(self) -> str:
        return f"p{len(self.parts) - 1}"
