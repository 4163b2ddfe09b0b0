from __future__ import annotations

import logging

from celery import shared_task

from . import figures, heartbeats, maintenance, retention, rollups, state

log = logging.getLogger(__name__)


@shared_task(name="monitors.prune_results", ignore_result=True)
def prune_results() -> int:
    deleted, more_left = retention.prune_results()
    deleted += rollups.prune_rollups()
    if more_left:
        prune_results.delay()
    return deleted


@shared_task(name="monitors.roll_up_results", ignore_result=True)
def roll_up_results() -> int:
    """Closed hours into rollups, and late results into theirs. A back-log
    (an upgrade's history) goes a time budget at a time, re-enqueued."""
    rolled, more_left = rollups.roll_up()
    if more_left:
        roll_up_results.delay()
    else:
        # What /metrics and the badges read, ready before they ask.
        figures.refresh()
    return rolled


@shared_task(name="monitors.sync_maintenance", ignore_result=True)
def sync_maintenance() -> tuple[int, int]:
    return maintenance.sync_maintenance()


@shared_task(name="monitors.decide_overdue_verdicts", ignore_result=True)
def decide_overdue_verdicts() -> int:
    return state.decide_overdue_verdicts()


@shared_task(name="monitors.sweep_late_heartbeats", ignore_result=True)
def sweep_late_heartbeats() -> int:
    return heartbeats.sweep_late_heartbeats()


@shared_task(name="monitors.prune_pings", ignore_result=True)
def prune_pings() -> int:
    deleted, more_left = heartbeats.prune_pings()
    if more_left:
        prune_pings.delay()
    return deleted
