"""Raw results on PostgreSQL: one partition per UTC day of `scheduled_at`.

A day is created ahead of time, dropped whole once it is past retention (no
DELETE storm, no vacuum debt: the database stays flat in steady state) and
its key index rebuilt once, after the day closed (compacted: a day's index is
written in 1,000s of places at once and its pages end up half full; rebuilt,
they are full). A default partition catches a row no day was created for yet
(beat stopped for days, a slot far ahead): creating that day moves them out.

Everything here is a no-op on SQLite, whose table is a plain one.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection, transaction

log = logging.getLogger(__name__)

TABLE = "monitors_checkresult"
DEFAULT = f"{TABLE}_default"
NAME = re.compile(rf"^{TABLE}_p(\d{{8}})$")
# Days created ahead of today: beat may be down that long without a row
# landing in the default partition.
AHEAD_DAYS = 3
# A closed day still gets late results (slow regions, redelivered batches)
# for a few minutes: it is compacted this long after it ended.
COMPACT_AFTER = timedelta(hours=1)
COMPACTED = "loopr: compacted"
# Partition DDL briefly locks the parent: it gives way to long readers
# instead of queueing every insert behind itself, and retries next run.
LOCK_TIMEOUT = "5s"


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def partitions() -> dict[date, str]:
    """The day partitions that exist, by day."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass", [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    found = {}
    for name in names:
        match = NAME.match(name)
        if match:
            found[datetime.strptime(match.group(1), "%Y%m%d").date()] = name
    return found


def ensure_partitions(today: date, ahead: int = AHEAD_DAYS, back: int = 1) -> list[str]:
    """Create the days from `back` days ago to `ahead` days ahead that are missing."""
    if not partitioned():
        return []
    existing = partitions()
    created = []
    for offset in range(-back, ahead + 1):
        day = today + timedelta(days=offset)
        if day not in existing:
            create_partition(day)
            created.append(partition_name(day))
    return created


def create_partition(day: date) -> None:
    """One day's partition; rows of that day waiting in the default partition move into it."""
    name, (start, end) = partition_name(day), day_bounds(day)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute(f"SELECT 1 FROM {DEFAULT} WHERE scheduled_at >= %s AND scheduled_at < %s LIMIT 1", [start, end])
        if cursor.fetchone() is None:
            cursor.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)", [start, end])
            return
        # PostgreSQL refuses a partition whose rows sit in the default one:
        # build the day beside the table, move them, then attach it.
        cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE scheduled_at >= %s AND scheduled_at < %s RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved", [start, end],
        )
        cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [start, end])
        log.warning("partitions: created %s late; moved its rows out of the default partition", name)


def drop_expired_partitions(cutoff: datetime) -> list[str]:
    """Drop every day that ended at or before `cutoff`: whole tables, at once."""
    if not partitioned():
        return []
    dropped = []
    for day, name in sorted(partitions().items()):
        if day_bounds(day)[1] > cutoff:
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            # Foreign-key checks still pending in this transaction would block the drop.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
            cursor.execute(f"DROP TABLE {name}")
        dropped.append(name)
    return dropped


def prune_default_partition(cutoff: datetime, batch_size: int) -> int:
    """Expired rows stranded in the default partition (normally none), one bounded batch."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {DEFAULT} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {DEFAULT} WHERE scheduled_at < %s "
            f"LIMIT %s))", [cutoff, batch_size],
        )
        return cursor.rowcount


def compact_closed_partitions(now: datetime) -> list[str]:
    """Rebuild the indexes of days that closed (once each): their pages,
    split in halves while the day was written, come out full."""
    if not partitioned():
        return []
    compacted = []
    for day, name in sorted(partitions().items()):
        if day_bounds(day)[1] + COMPACT_AFTER > now or _is_compacted(name):
            continue
        with connection.cursor() as cursor:
            # CONCURRENTLY keeps the day readable and writable meanwhile; it
            # cannot run inside a transaction (the tests' are).
            concurrently = "" if connection.in_atomic_block else " CONCURRENTLY"
            cursor.execute(f"REINDEX TABLE{concurrently} {name}")
            cursor.execute(f"COMMENT ON TABLE {name} IS '{COMPACTED}'")
        compacted.append(name)
    return compacted


def _is_compacted(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description(%s::regclass, 'pg_class')", [name])
        return cursor.fetchone()[0] == COMPACTED
