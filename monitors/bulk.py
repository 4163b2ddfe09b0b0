"""The hot path's raw writes: results inserted and monitors' status saved
many rows a statement, without the ORM's per-row cost.

Values go through the backend's own adapters only (see `_adapters`), so
these statements are the only SQL that knows Loopr's column lists; the
lists themselves come from the protocol (`wire.RESULT_FIELDS`) and the
state machine (`STATUS_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from datetime import timezone as dt_timezone
from operator import attrgetter, itemgetter
from typing import Any

import logging
import re

from django.db import DatabaseError, connection, models, transaction
from django.utils.dateparse import parse_datetime

from .choices import ErrorKind
from .models import CheckResult, Monitor
from .wire import RESULT_FIELDS, Result

log = logging.getLogger(__name__)

INSERT_CHUNK = 500
_LENGTH = re.compile(r"\(\d+\)")
# What ingest adds to each validated result.
RESULT_COLUMNS = (*RESULT_FIELDS, "region_id", "node_id", "in_maintenance")
# The monitor's state that ingest moves; written back with one UPDATE for many rows.
STATUS_FIELDS = [
    "status", "health", "status_changed_at", "alerted_health", "is_flapping", "last_checked_at", "last_slot_at",
    "consecutive_failures", "consecutive_successes", "failing_since", "failure_kind", "failure_message",
    "failure_regions", "current_incident_id", "region_results", "verdict_due_at",
]

Adapter = Callable[[Any], Any]


def _adapters(model: type[models.Model], attnames: Iterable[str]) -> dict[int, Adapter]:
    # Field.get_db_prep_save costs ~40 µs for a datetime (naive-time checks);
    # the backend's adapter alone is what the database needs. JSON needs the
    # field's own encoding; everything else goes as it is.
    fields = model._meta._forward_fields_map
    adapters: dict[int, Adapter] = {}
    for position, name in enumerate(attnames):
        field = fields[name]
        if isinstance(field, models.DateTimeField):
            adapters[position] = connection.ops.adapt_datetimefield_value
        elif isinstance(field, models.JSONField):
            adapters[position] = lambda value, field=field: field.get_db_prep_save(value, connection)
    return adapters


def _parameters(model: type[models.Model], attnames: list[str], read: Callable[[Any], tuple]
                ) -> Callable[[Any], list[Any]]:
    """A function from a row (`read` takes its values, in `attnames` order)
    to the statement's parameters."""
    adapters = list(_adapters(model, attnames).items())

    def parameters(row: Any) -> list[Any]:
        values = list(read(row))
        for position, adapt in adapters:
            if values[position] is not None:
                values[position] = adapt(values[position])
        return values

    return parameters


def save_status(monitors: list[Monitor]) -> None:
    """The monitors' status fields written back: on PostgreSQL one UPDATE …
    FROM unnest(arrays) statement for every row (bulk_update's CASE WHEN
    statements cost ~1 ms of CPU per row; an UPDATE per row, even pipelined,
    is parsed and planned once per row); elsewhere one parameterised UPDATE
    sent for many rows."""
    if not monitors:
        return
    fields = [Monitor._meta._forward_fields_map[name] for name in STATUS_FIELDS]
    parameters = _parameters(Monitor, STATUS_FIELDS, attrgetter(*STATUS_FIELDS, "pk"))
    params = [parameters(m) for m in monitors]
    table = Monitor._meta.db_table
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET " + ", ".join(f"{f.column} = %s" for f in fields) + " WHERE id = %s", params)
        return
    sql = (f"UPDATE {table} AS m SET " + ", ".join(f"{f.column} = v.{f.column}" for f in fields)
           + f" FROM {_unnest(Monitor, [*STATUS_FIELDS, 'id'])} WHERE m.id = v.id")
    with _bound_cursor() as cursor:
        cursor.execute(sql, [list(column) for column in zip(*params)])


def insert_new_results(rows: list[Result], monitors: dict[int, Monitor], region_id: int, node_id: int | None,
                       one_by_one: bool = False) -> tuple[list[Result], int]:
    """INSERT … ON CONFLICT … RETURNING: one statement per chunk, and it tells
    which rows were new (both PostgreSQL and SQLite ≥ 3.35 speak it). A row
    whose slot holds a missed record replaces it; one whose slot holds a
    result is a duplicate and left out. Each result is stamped with its
    monitor's maintenance flag.

    `one_by_one`: each row in a savepoint of its own, so a row the database
    refuses is dropped alone (returns how many were); the caller uses it
    after a chunk failed.
    """
    parameters = _parameters(CheckResult, list(RESULT_FIELDS), itemgetter(*RESULT_FIELDS))
    # One row per slot: an upsert may not touch a row twice in one statement.
    rows = list({(row["monitor_id"], row["scheduled_at"]): row for row in reversed(rows)}.values())[::-1]
    inserted, refused = [], 0
    size = 1 if one_by_one else INSERT_CHUNK
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        params: list[list[Any]] = []  # a row's values, in RESULT_COLUMNS order
        keyed = {}
        for row in chunk:
            keyed[(row["monitor_id"], row["scheduled_at"])] = row
            values = parameters(row)
            values += (region_id, node_id, monitors[row["monitor_id"]].in_maintenance)
            params.append(values)
        if one_by_one:
            try:
                with transaction.atomic():
                    keys = _insert_returning_keys(params)
            except (DatabaseError, ValueError):
                log.warning("ingest: the database refused a result of monitor %s, slot %s; dropped",
                            chunk[0]["monitor_id"], chunk[0]["scheduled_at"], exc_info=True)
                refused += 1
                continue
        else:
            keys = _insert_returning_keys(params)
        for monitor_id, slot in keys:
            inserted.append(keyed[(monitor_id, _as_aware(slot))])
    return inserted, refused


# A real result replaces a missed record of its slot (a batch thought lost
# that ran after all), never another result. On PostgreSQL it takes a new id
# too: rolling up finds results that arrive after their hour by id
# (monitors/rollups.py), and a replaced record is such a result.
def upsert(vendor: str) -> str:
    return " ".join([
        "ON CONFLICT (monitor_id, scheduled_at, region_id) DO UPDATE SET",
        ", ".join(f"{column} = EXCLUDED.{column}" for column in RESULT_COLUMNS),
        ", missed_reason = '', missed_until = NULL",
        ", id = EXCLUDED.id" if vendor == "postgresql" else "",
        f"WHERE {CheckResult._meta.db_table}.error_kind = '{ErrorKind.MISSED}'",
    ])


def _insert_returning_keys(params: list[list[Any]]) -> list[tuple[int, datetime | str]]:
    table = CheckResult._meta.db_table
    if connection.vendor == "postgresql":
        sql = (f"INSERT INTO {table} ({', '.join(RESULT_COLUMNS)}) SELECT * FROM {_unnest(CheckResult, RESULT_COLUMNS)} "
               f"{upsert(connection.vendor)} RETURNING monitor_id, scheduled_at")
        with _bound_cursor() as cursor:
            cursor.execute(sql, [list(column) for column in zip(*params)])
            return cursor.fetchall()
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(RESULT_COLUMNS)) + ")"] * len(params))
    sql = f"INSERT INTO {table} ({', '.join(RESULT_COLUMNS)}) VALUES {placeholders} {upsert(connection.vendor)} " \
          f"RETURNING monitor_id, scheduled_at"
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for values in params for value in values])
        return cursor.fetchall()


def _unnest(model: type[models.Model], attnames: Iterable[str]) -> str:
    """`unnest(%s::type[], …) AS v(column, …)`: rows given as one array a
    column. The statement stays short whatever the number of rows (the
    driver converts it once and caches it), and the arrays say their types
    (a NULL or a JSON text would not). No length on the casts: an explicit
    cast to varchar(n) would cut a long value silently where the column's
    own assignment refuses it."""
    fields = [model._meta._forward_fields_map[name] for name in attnames]
    casts = ", ".join(f"%s::{_LENGTH.sub('', field.db_type(connection))}[]" for field in fields)
    return f"unnest({casts}) AS v({', '.join(field.column for field in fields)})"


@contextmanager
def _bound_cursor() -> Iterator[Any]:
    """A psycopg cursor that sends the values apart from the statement
    (server-side binding) on Django's connection, in its transaction, with
    Django's error classes. Django's own cursors bind on the client: every
    value quoted into the SQL text in Python, which for a message's arrays
    cost more CPU than the database spent on the statement."""
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def _as_aware(value: datetime | str) -> datetime:
    # PostgreSQL hands back aware datetimes; SQLite naive UTC (or text).
    if isinstance(value, str):
        value = parse_datetime(value)
    return value if value.tzinfo else value.replace(tzinfo=dt_timezone.utc)
