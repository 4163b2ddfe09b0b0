"""Missed slots: a due (monitor, region, slot) that no check answered gets a
record saying why (`MissedReason`), so a gap in a monitor's history is never
mistaken for lost data.

A missed record is a row of the results table with `error_kind` "missed",
`ok` null and the same natural key as a result, so each slot has exactly one
of the two: recording a missed slot never replaces a result (ON CONFLICT DO
NOTHING), and a result that arrives later replaces the missed record (ingest's
upsert, `bulk.insert_new_results`). A run of consecutive slots missed for the
same reason is one row, `scheduled_at` to `missed_until`: a day of downtime
writes one row per monitor and region, not one per slot.

Missed records are no data: the state machine never sees them (they do not
pass through ingest's judging), so they are never downtime.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from loopr import tallies

from .choices import ErrorKind, MissedReason
from .models import CheckResult

log = logging.getLogger(__name__)

# Slots that were never sent: no result can turn up for them, so consecutive
# ones may share a row. A slot that was sent and lost (expired, node_died)
# keeps a row of its own, which a late result replaces.
NEVER_SENT = frozenset({MissedReason.DISPATCHER_DOWN, MissedReason.NO_REGION, MissedReason.OVERLOAD})


@dataclass(frozen=True)
class Missed:
    """Slots `first` … `last` (every `interval` seconds) of a monitor in a region, missed for `reason`."""

    monitor_id: int
    region_id: int
    first: datetime
    last: datetime
    interval: int
    reason: str

    @property
    def slots(self) -> int:
        return round((self.last - self.first).total_seconds() / self.interval) + 1


def record_missed(runs: Iterable[Missed], now: datetime | None = None) -> int:
    """Record runs of missed slots; a run that continues one already recorded
    for the same monitor, region and reason extends it. Returns the number of
    slots recorded (a slot that has a result or a missed record already is not
    recorded again)."""
    # In monitor id order: each row inserted takes a share lock on its monitor
    # (the foreign key), and monitors are locked in id order (monitors/locks.py).
    runs = sorted((run for run in runs if run.last >= run.first), key=lambda r: (r.monitor_id, r.region_id, r.first))
    if not runs:
        return 0
    now = now or timezone.now()
    with transaction.atomic():
        rest = _extend(runs)
        rows = [
            CheckResult(monitor_id=run.monitor_id, region_id=run.region_id, node=None, scheduled_at=run.first,
                        checked_at=now, ok=None, error_kind=ErrorKind.MISSED, missed_reason=run.reason,
                        missed_until=run.last)
            for run in sorted(rest, key=lambda r: (r.monitor_id, r.region_id, r.first))
        ]
        CheckResult.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    by_reason: dict[str, int] = {}
    for run in runs:
        by_reason[str(run.reason)] = by_reason.get(str(run.reason), 0) + run.slots
    tallies.add({f"missed.{reason}": slots for reason, slots in by_reason.items()})
    log.info("missed slots recorded: %s", by_reason)
    return sum(by_reason.values())


def _extend(runs: list[Missed]) -> list[Missed]:
    """Extend the recorded runs that end one interval before a new run
    starts; returns the runs that continue none."""
    single = [run for run in runs if run.reason not in NEVER_SENT]
    runs = [run for run in runs if run.reason in NEVER_SENT]
    if not runs:
        return single
    if connection.vendor != "postgresql":
        return single + [run for run in runs if not _extend_one(run)]
    values = ", ".join(["(%s, %s, %s, %s::timestamptz, %s::timestamptz)"] * len(runs))
    params: list = []
    for run in runs:
        params += [run.monitor_id, run.region_id, run.reason, run.first - timedelta(seconds=run.interval), run.last]
    # Served by checkresult_missed_run_idx: missed rows only.
    sql = f"""
        UPDATE {CheckResult._meta.db_table} AS r SET missed_until = v.last
        FROM (VALUES {values}) AS v (monitor_id, region_id, reason, previous, last)
        WHERE r.monitor_id = v.monitor_id AND r.region_id = v.region_id AND r.error_kind = %s
          AND r.missed_reason = v.reason AND r.missed_until = v.previous
        RETURNING r.monitor_id, r.region_id, v.previous
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, ErrorKind.MISSED])
        extended = {(m, r, p) for m, r, p in cursor.fetchall()}
    return single + [run for run in runs
            if (run.monitor_id, run.region_id, run.first - timedelta(seconds=run.interval)) not in extended]


def _extend_one(run: Missed) -> bool:
    return bool(CheckResult.objects.filter(
        monitor_id=run.monitor_id, region_id=run.region_id, error_kind=ErrorKind.MISSED,
        missed_reason=run.reason, missed_until=run.first - timedelta(seconds=run.interval),
    ).update(missed_until=run.last))

