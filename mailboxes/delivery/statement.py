"""The rows of one delivery in one PostgreSQL statement (issue 17: fewer round trips).

On PostgreSQL the delivery transaction is two statements instead of nine: the ids the rows
refer to are reserved from their sequences (`reserve_ids`) in the round trip that takes the
audit chain's head (`audit.chain.free_head_value`, then `link_deferred`), and every INSERT and
UPDATE of the delivery then runs as the data-modifying parts of one `WITH … SELECT` (`DeliveryStatement`). Nothing is private: the
columns and values come from each model's public `_meta` fields and their documented
`pre_save` / `get_db_prep_save`, as the ORM itself writes them; the SQL is built from table and
column names only, every value a bound parameter. Django creates PostgreSQL foreign keys
`DEFERRABLE INITIALLY DEFERRED`, so the rows may refer to each other within the statement.
Each part's rows travel as one JSON parameter (`jsonb_populate_recordset`): see `JSON_TEXT`.
Other databases keep the ORM's `bulk_create` (mailboxes/delivery/writing.py).
"""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import math
import uuid
from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, connection, connections, models

from mssante.sql import table, writes_in_with

# psycopg converts the `%s` of a query to `$n` in Python, about 10 µs a placeholder, and keeps the
# conversion only for queries of at most 50 parameters (and 4,096 bytes): measured, a delivery's
# statement of about 100 values took 1–2 ms of the gateway's CPU per message to convert. Rows
# sent as one JSON parameter per part (`jsonb_populate_recordset`) keep it under that, so the
# converted text of each shape of statement is reused.
JSON_TEXT = (str, int, bool, type(None))
JSON_AS_TEXT = (datetime.datetime, datetime.date, datetime.time, decimal.Decimal, uuid.UUID)


# Fields whose `pre_save` reads the attribute and whose `get_db_prep_save` returns a value of
# the given type as it is (`CharField.to_python` of a str, `int()` of an int, a bool), on every
# backend; the exact classes only, since a subclass may convert. A foreign key is its target's.
PLAIN_FIELDS: dict[type[models.Field], type] = {
    models.CharField: str,
    models.TextField: str,
    models.EmailField: str,
    models.BooleanField: bool,
    **dict.fromkeys(
        (
            models.AutoField,
            models.BigAutoField,
            models.SmallAutoField,
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveBigIntegerField,
            models.PositiveSmallIntegerField,
        ),
        int,
    ),
}


@functools.cache
def plain_type(field: models.Field) -> type | None:
    """The type whose values `field` stores as they are (PLAIN_FIELDS), or None."""
    if type(field) is models.ForeignKey:
        return plain_type(field.target_field)
    return PLAIN_FIELDS.get(type(field))


class NotJson(Exception):
    """A value that the JSON rows cannot carry as PostgreSQL would read it (bytes, a custom encoder…)."""


def json_value(field: models.Field, row: models.Model, db=connection):
    """The value of `field` for `row`, as `jsonb_populate_recordset` reads it into the column:
    the field's documented `pre_save` (auto_now…) then `get_db_prep_save`, written as JSON; a
    JSONField's value as the nested JSON itself. `db`: the connection (`connections[alias]`,
    which the callers of the delivery path pass resolved: each attribute read through the
    `connection` proxy looks the connection up again, 3 % of a campaign worker's CPU). A field
    of `PLAIN_FIELDS` holding a value of its own plain type (or None) is that value: what
    `pre_save` and `get_db_prep_save` would return, without their calls (about a hundred
    values per delivery)."""
    kind = plain_type(field)
    if kind is not None:
        value = getattr(row, field.attname)
        if value is None or type(value) is kind:
            return value
    value = field.pre_save(row, True)
    if isinstance(field, models.JSONField):
        if field.encoder is not None:
            raise NotJson(field.name)
        return value
    if isinstance(field, models.GenericIPAddressField):
        # Its database value on PostgreSQL is psycopg's `Inet`; its prepared value, the address as
        # text, is what `inet` reads from JSON (an audit event's IP: the API's and the webmail's).
        return field.get_prep_value(value)
    value = field.get_db_prep_save(value, db)
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, JSON_TEXT):
        return value
    if isinstance(value, JSON_AS_TEXT):
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    raise NotJson(field.name)


def uses_one_statement() -> bool:
    return writes_in_with()


def _sequence_of(model: type[models.Model]) -> str:
    return f"pg_get_serial_sequence('\"{model._meta.db_table}\"', '{model._meta.pk.column}')"


def reserve_ids(
    model: type[models.Model],
    count: int,
    *others: tuple[type[models.Model], int],
    also: Sequence[tuple[str, list]] = (),
) -> list:
    """`count` new ids of `model` (and of each (model, count) of `others`) from their sequences,
    in one round trip: the rows can then be written, and referred to, in one statement. `also`:
    more (SQL expression, parameters) read in that same round trip (the audit chain's head,
    `audit.chain.free_head_value`); their values follow the lists of ids."""
    wanted = [(model, count), *others]
    columns = [
        f"ARRAY(SELECT nextval({_sequence_of(m)}) FROM generate_series(1, %s))"  # noqa: S608 - model names
        for m, _ in wanted
    ]
    params: list = [n for _, n in wanted]
    for sql, values in also:
        columns.append(sql)
        params += values
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(columns)}", params)
        row = cursor.fetchone()
    return [list(ids) for ids in row[: len(wanted)]] + list(row[len(wanted) :])


@functools.cache
def insert_shape(model: type[models.Model], with_pk: bool) -> tuple[list[models.Field], str, str]:
    """(fields, quoted table, quoted column list) of an INSERT of `model`'s rows: the same for
    every delivery, so built once per process (quoting each column of each part of every
    delivery was about 4 % of a campaign worker's CPU, bench/RESULTS.md issue 9)."""
    fields = [f for f in model._meta.concrete_fields if f.column and (with_pk or not f.primary_key)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields if f.column)
    return fields, table(model), columns


@functools.cache
def json_source(model: type[models.Model], with_pk: bool, as_text: tuple[str, ...]) -> str:
    """The `SELECT` of `DeliveryStatement.insert`'s rows: the JSON parameter's records `r`, in
    their order; the columns of `as_text` (one row only) are parameters of their own, in the
    model's field order, before the JSON's. Built once per shape: the statement's text, and so
    psycopg's conversion of it, stays the same from one delivery to the next."""
    fields, table, _ = insert_shape(model, with_pk)
    quote = connection.ops.quote_name
    select = ", ".join("%s" if f.column in as_text else f"r.{quote(f.column)}" for f in fields if f.column)
    source = f"jsonb_populate_recordset(NULL::{table}, %s::jsonb) WITH ORDINALITY AS r"
    return f"SELECT {select} FROM {source} ORDER BY r.ordinality"  # noqa: S608 - model names


class DeliveryStatement:
    """Data-modifying parts (`name AS (INSERT …)`) gathered, then run as one statement."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list = []
        self.awaiting_ids: list[tuple[int, list[models.Model]]] = []

    def insert(
        self,
        model: type[models.Model],
        rows: Sequence[models.Model],
        *,
        with_pk: bool,
        return_ids: bool = False,
        as_text: tuple[str, ...] = (),
    ) -> str:
        """An INSERT of `rows` (nothing when empty); the part's name. `with_pk`: the rows carry
        reserved ids; otherwise the id column is left to its default, and with `return_ids` the
        rows get the ids it gave (`run`), as `bulk_create` gives them. The rows go as one JSON
        parameter (`jsonb_populate_recordset`, in their order) when every value can, except, for
        a single row, the text columns named in `as_text` (long text, such as a message's
        bodies: escaping them into JSON, or into an array, and reading them back costs more
        than sending them as they are), each a parameter of its own. A value JSON cannot carry:
        one parameter per value."""
        if not rows:
            return ""
        fields, table, columns = insert_shape(model, with_pk)
        returning = ""
        if return_ids and not with_pk:
            returning = f" RETURNING {connection.ops.quote_name(model._meta.pk.column or 'id')}"
            self.awaiting_ids.append((len(self.parts), list(rows)))
        db = connections[DEFAULT_DB_ALIAS]
        as_text = as_text if len(rows) == 1 else ()
        try:
            payload = [{f.column: json_value(f, row, db) for f in fields if f.column not in as_text} for row in rows]
        except NotJson:
            pass
        else:
            texts = [json_value(f, rows[0], db) for f in fields if f.column in as_text]
            return self.add(
                f"INSERT INTO {table} ({columns}) {json_source(model, with_pk, as_text)}{returning}",
                [*texts, json.dumps(payload, ensure_ascii=False, separators=(",", ":"))],
            )
        one_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        params = [f.get_db_prep_save(f.pre_save(row, True), db) for row in rows for f in fields]
        values = ", ".join([one_row] * len(rows))
        return self.add(f"INSERT INTO {table} ({columns}) VALUES {values}{returning}", params)  # noqa: S608 - model names

    def add(self, sql: str, params: list) -> str:
        """Any data-modifying statement (INSERT, UPDATE) as one more part; the part's name."""
        self.parts.append(sql)
        self.params += params
        return f"p{len(self.parts) - 1}"

    def run(self, result: str = "NULL"):
        """Run every part in one statement (the parts are named `p0`, `p1`, … in the order they
        were added): the rows of `insert(return_ids=True)` get their ids; returns the value of
        `result`, a scalar expression over the parts."""
        names = [f"p{i}" for i in range(len(self.parts))]
        with_clause = ", ".join(f"{name} AS ({sql})" for name, sql in zip(names, self.parts, strict=True))
        # Rows come back from a multi-row INSERT … RETURNING in the order of its VALUES, as
        # Django's own bulk_create on PostgreSQL relies on.
        ids = ", ".join(f"ARRAY(SELECT * FROM p{index})" for index, _ in self.awaiting_ids)  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {with_clause} SELECT {result}{', ' if ids else ''}{ids}", self.params)  # noqa: S608
            value, *returned = cursor.fetchone()
        for (_, rows), pks in zip(self.awaiting_ids, returned, strict=True):
            for row, pk in zip(rows, pks, strict=True):
                row.pk = pk
        return value
