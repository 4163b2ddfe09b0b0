"""Ingest: a probe node's message of results, stored once and fed to the
state machine, as a sequence of stages (parse, lock, insert, judge, save).

Idempotent: a result whose (monitor, slot, region) is already stored is
ignored, so a redelivered message changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone


from .bulk import STATUS_FIELDS, insert_new_results, save_status
from .locks import lock_monitors
from .models import Monitor
from .regions import Region
from .state import judge
from .wire import MalformedResult, Result, parse_result

log = logging.getLogger(__name__)

REGION_NAME = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")
# What judging reads of a monitor, and what it writes back.
MONITOR_FIELDS = [
    "name", "url", "timeout", "paused", "in_maintenance", "retries", "recovery_checks", "latency_threshold_ms",
    "flap_threshold", "flap_window", "quorum", *STATUS_FIELDS,
]


@dataclass
class IngestOutcome:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    status_changes: int = 0


def ingest_results(region: str, node: str, results: list, node_id: int | None = None) -> IngestOutcome:
    """Store a probe node's results and move the monitors' status. `node`
    names the node in logs; `node_id` (the fleet's WorkerNode) is stored."""
    rows, rejected = parse_message(region, node, results)
    outcome = IngestOutcome(rejected=rejected)
    if not rows:
        return outcome
    rid = region_id(region)
    with transaction.atomic():
        # The monitors first, then whatever judging writes (the lock order, monitors/locks.py).
        monitors = lock_monitors({row["monitor_id"] for row in rows}, MONITOR_FIELDS)
        rows = [row for row in rows if row["monitor_id"] in monitors]  # deleted meanwhile
        inserted = insert_new_results(rows, monitors, rid, node_id)
        outcome.stored, outcome.duplicates = len(inserted), len(rows) - len(inserted)
        outcome.status_changes = move_status(monitors, region, inserted)
    return outcome


def parse_message(region: str, node: str, results: list) -> tuple[list[Result], int]:
    """The message's valid results, and how many were rejected."""
    if not isinstance(region, str) or not REGION_NAME.match(region):
        log.error("ingest: dropped %s results with invalid region %r", len(results or []), region)
        return [], len(results) if isinstance(results, list) else 1
    if not isinstance(results, list):
        log.error("ingest: dropped a message whose results are a %s", type(results).__name__)
        return [], 1
    rows, rejected = [], 0
    for raw in results:
        try:
            rows.append(parse_result(raw))
        except MalformedResult as exc:
            rejected += 1
            log.warning("ingest: rejected a result from %s/%s: %s", region, str(node)[:200], exc)
    return rows, rejected


def region_id(name: str) -> int:
    return Region.objects.get_or_create(name=name)[0].pk


def move_status(monitors: dict[int, Monitor], region: str, inserted: list[Result]) -> int:
    """Judge each monitor's new results and save what moved; returns the
    number of transitions."""
    per_monitor: dict[int, list[Result]] = defaultdict(list)
    for row in inserted:
        per_monitor[row["monitor_id"]].append(row)
    expected = expected_regions(list(per_monitor))
    now = timezone.now()
    changes = sum(
        judge_results(monitors[monitor_id], region, rows, expected[monitor_id] | {region}, now)
        for monitor_id, rows in per_monitor.items()
    )
    save_status([monitors[monitor_id] for monitor_id in per_monitor])
    return changes


def judge_results(monitor: Monitor, region: str, rows: list[Result], waits_for: set[str], now: datetime) -> int:
    # Slot by slot: a node reporting a backlog of slots in one message still
    # counts each failure toward the retries.
    changes = 0
    for row in sorted(rows, key=lambda r: (r["scheduled_at"], r["checked_at"])):
        monitor.note_region_result(region, row["scheduled_at"], row["checked_at"], row["ok"],
                                   row["error_kind"], row["error"], row["latency_ms"], row["impaired"])
        monitor.note_checked_at(row["checked_at"])
        changes += judge(monitor, monitor.verdict(waits_for, now, settings.LOOPR_VERDICT_GRACE))
    return changes


def expected_regions(monitor_ids: list[int]) -> dict[int, set[str]]:
    """The regions each monitor's slot waits for: its chosen regions that are
    live, or every live region when it chose none."""
    live = set(Region.objects.live().values_list("name", flat=True))
    chosen: dict[int, set[str]] = defaultdict(set)
    for monitor_id, name in Monitor.regions.through.objects.filter(monitor_id__in=monitor_ids).values_list(
        "monitor_id", "region__name"
    ):
        chosen[monitor_id].add(name)
    return {m: (chosen[m] & live) if m in chosen else set(live) for m in monitor_ids}
