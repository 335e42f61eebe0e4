"""Small helpers for the hand-written statements on the hub's hot paths.

The token lookup, the memory row, and acquiring, releasing, claiming and completing run on every
request under load; the ORM's query building (and `raw()`'s per-query model introspection) cost more
CPU than the database's work there (see tests/bench/census.py). So those statements are written out,
short and one per purpose, and work on PostgreSQL and SQLite alike: the only differences are the
row-lock clauses, which SQLite has no need for (its IMMEDIATE transactions run writers one at a time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sized
from typing import Any
from weakref import WeakKeyDictionary

from django.db import connection, connections
from django.db.models import Model


def placeholders(values: Sized) -> str:
    """`%s, %s, ...` for an `IN (...)` list of these values."""
    return ", ".join(["%s"] * len(values))


def row_lock(clause: str) -> str:
    """` FOR UPDATE` (or the clause given) where the database locks rows; nothing on SQLite."""
    return f" {clause}" if connection.features.has_select_for_update else ""


def fetch(sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
    """Run one statement that returns rows (a SELECT, a `RETURNING`); its rows. Parameters are adapted
    as the ORM would (on SQLite, datetimes become the naive UTC text the ORM stores, so comparisons
    stay right)."""
    adapt = connection.ops.adapt_unknown_value
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(value) for value in params])
        return cursor.fetchall()


def execute(sql: str, params: Iterable[Any]) -> int:
    """Run one statement that returns no rows; the number of rows it changed."""
    adapt = connection.ops.adapt_unknown_value
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(value) for value in params])
        return cursor.rowcount


def columns(model: type[Model], table: str = "") -> str:
    """The model's columns in field order, for `RETURNING ...` or `SELECT ...` whose rows
    `instances()` reads (qualified with `table.` if given). Named, not `*`: a column a migration adds
    later cannot shift them."""
    prefix = f"{table}." if table else ""
    return ", ".join(f"{prefix}{field.column}" for field in model._meta.concrete_fields)


def instances[M: Model](model: type[M], sql: str, params: Iterable[Any]) -> list[M]:
    """Model instances from a statement whose rows start with `columns(model)`, converted as the ORM
    converts them (JSON, SQLite datetimes...): what `raw()` does, at a fraction of its cost."""
    return [instance for instance, _ in instances_and_extras(model, sql, params)]


def instances_and_extras[M: Model](model: type[M], sql: str, params: Iterable[Any]) -> list[tuple[M, tuple[Any, ...]]]:
    """Like `instances()`, each with the values of the columns after the model's, in their order."""
    adapt = connection.ops.adapt_unknown_value
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(value) for value in params])
        rows = cursor.fetchall()
    if not rows:
        return []
    attnames, converters = _plan(model)
    count = len(attnames)
    results = []
    for row in rows:
        values = list(row[:count])
        for index, functions, expression in converters:
            for function in functions:
                values[index] = function(values[index], expression, connection)
        results.append((model.from_db(connection.alias, attnames, values), tuple(row[count:])))
    return results


# Per database connection (the converters are bound to it) and model: its attnames and, for the fields
# that need them, (index, converter functions, column expression).
_plans: WeakKeyDictionary[Any, dict[type[Model], tuple[list[str], list[tuple[int, list[Any], Any]]]]] = (
    WeakKeyDictionary()
)


def _plan(model: type[Model]) -> tuple[list[str], list[tuple[int, list[Any], Any]]]:
    wrapper = connections[connection.alias]
    plans = _plans.setdefault(wrapper, {})
    if model not in plans:
        fields = model._meta.concrete_fields
        converters = []
        for index, field in enumerate(fields):
            expression = field.get_col(model._meta.db_table)
            functions = wrapper.ops.get_db_converters(expression) + expression.get_db_converters(wrapper)
            if functions:
                converters.append((index, functions, expression))
        plans[model] = ([field.attname for field in fields], converters)
    return plans[model]
