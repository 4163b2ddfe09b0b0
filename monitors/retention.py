"""Retention: raw results older than LOOPR_RESULTS_RETENTION_DAYS go.

On PostgreSQL whole days are dropped (monitors/partitions.py): no DELETE
storm, no vacuum debt. SQLite's plain table is pruned in short batches, one
monitor at a time along the natural key, never in one long transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from . import partitions
from .models import CheckResult, Monitor


def results_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=settings.LOOPR_RESULTS_RETENTION_DAYS)


def prune_results(now: datetime | None = None, batch_size: int = 5000, budget_seconds: float = 20.0) -> tuple[int, bool]:
    """Remove results past retention, within a time budget.

    Returns (rows deleted, more_left) so the caller can re-enqueue itself
    instead of holding one long lock or one huge transaction. (Rows of
    dropped partitions are not counted: dropping does not read them.)
    """
    now = now or timezone.now()
    cutoff = results_cutoff(now)
    deadline = timezone.now() + timedelta(seconds=budget_seconds)
    if partitions.partitioned():
        partitions.ensure_partitions(now.date())
        partitions.drop_expired_partitions(cutoff)
        partitions.compact_closed_partitions(now)
        return _in_batches(lambda: partitions.prune_default_partition(cutoff, batch_size), batch_size, deadline)
    deleted = 0
    for monitor_id in Monitor.objects.order_by("pk").values_list("pk", flat=True).iterator():
        count, more = _in_batches(lambda: _prune_monitor(monitor_id, cutoff, batch_size), batch_size, deadline)
        deleted += count
        if more:
            return deleted, True
    return deleted, False


def _in_batches(batch, batch_size: int, deadline: datetime) -> tuple[int, bool]:
    deleted = 0
    while True:
        count = batch()
        deleted += count
        if count < batch_size:
            return deleted, False
        if timezone.now() >= deadline:
            return deleted, True


def _prune_monitor(monitor_id: int, cutoff: datetime, batch_size: int) -> int:
    # Along the natural key (monitor, region, scheduled_at): no index on time alone is needed.
    table = CheckResult._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE monitor_id = %s AND scheduled_at < %s "
            f"LIMIT %s)", [monitor_id, connection.ops.adapt_datetimefield_value(cutoff), batch_size],
        )
        return cursor.rowcount
