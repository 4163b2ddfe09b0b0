"""Ingest: a probe node's message of results, stored once and fed to the
state machine, as a sequence of stages (parse, lock, insert, judge, save).

Idempotent: a result whose (monitor, slot, region) is already stored is
ignored, so a redelivered message changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from loopr import tallies
from loopr.formatting import excerpt

from .bulk import STATUS_FIELDS, insert_new_results, save_status
from .certificates import alert_expiring_certificates
from .locks import lock_monitors
from .models import Monitor
from .regions import Region
from .state import judge
from .wire import MalformedResult, Result, parse_result

log = logging.getLogger(__name__)

# A node reports at least once a second and a batch holds at most 5,000
# checks (LOOPR_BATCH_SIZE's maximum): more in one message is not a node's.
MAX_RESULTS_PER_MESSAGE = 5000
REGION_NAME = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")
# What judging reads of a monitor, and what it writes back.
MONITOR_FIELDS = [
    "name", "url", "timeout", "paused", "in_maintenance", "retries", "recovery_checks", "latency_threshold_ms",
    "flap_threshold", "flap_window", "quorum", "tls_expiry_alert_days", "tls_alerted_expiry", "tls_alerted_days",
    *STATUS_FIELDS,
]


@dataclass
class IngestOutcome:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    status_changes: int = 0
    rejected_fields: dict[str, int] = field(default_factory=dict)  # why rows were rejected, counted


def ingest_results(region: str, node: str, results: list, node_id: int | None = None) -> IngestOutcome:
    """Store a probe node's results and move the monitors' status. `node`
    names the node in logs; `node_id` (the fleet's WorkerNode) is stored."""
    rows, reasons = parse_message(region, node, results)
    rejected = sum(reasons.values())
    if not rows:
        return IngestOutcome(rejected=rejected, rejected_fields=dict(reasons))
    outcome = store(rows, region, str(node)[:200], node_id, rejected)
    outcome.rejected_fields = dict(reasons)
    return outcome


def store(rows: list[Result], region: str, node: str, node_id: int | None, rejected: int = 0) -> IngestOutcome:
    """Store validated results and judge them."""
    rid = region_id(region)
    try:
        return store_and_judge(rows, rid, region, node_id, rejected)
    except (DataError, IntegrityError, ValueError) as exc:
        # A row the database refuses (what validation let through) must not
        # cost the message's good rows: again, each row on its own. Costs
        # nothing until it happens.
        log.warning("ingest from %s/%s: %s: %s; storing its rows one by one", region, node,
                    type(exc).__name__, exc)
        return store_and_judge(rows, rid, region, node_id, rejected, one_by_one=True)


def store_and_judge(rows: list[Result], rid: int, region: str, node_id: int | None, rejected: int = 0,
                    one_by_one: bool = False) -> IngestOutcome:
    outcome = IngestOutcome(rejected=rejected)
    with transaction.atomic():
        # The monitors first, then whatever judging writes (the lock order, monitors/locks.py).
        monitors = lock_monitors({row["monitor_id"] for row in rows}, MONITOR_FIELDS)
        rows = [row for row in rows if row["monitor_id"] in monitors]  # deleted meanwhile
        inserted, refused = insert_new_results(rows, monitors, rid, node_id, one_by_one)
        outcome.stored, outcome.rejected = len(inserted), outcome.rejected + refused
        outcome.duplicates = len(rows) - len(inserted) - refused
        outcome.status_changes = move_status(monitors, region, inserted)
        alert_expiring_certificates(monitors, inserted, timezone.now())
    if refused:
        tallies.add({"refused_rows": refused})
    # What was inserted only: a redelivered result is not counted twice.
    tallies.count_checks((row["monitor_id"], row["ok"]) for row in inserted)
    return outcome


def parse_message(region: str, node: str, results: list) -> tuple[list[Result], Counter[str]]:
    """The message's valid results, and the rejected ones counted by the
    field at fault: each row is judged on its own, so one bad row never costs
    the good ones beside it; one log line per message, however many it rejects."""
    if not isinstance(region, str) or not REGION_NAME.match(region):
        log.error("ingest: dropped a message with invalid region %s", excerpt(region, 80))
        return [], Counter(region=len(results) if isinstance(results, list) else 1)
    if not isinstance(results, list):
        log.error("ingest: dropped a message whose results are a %s", type(results).__name__)
        return [], Counter(results=1)
    rows, reasons, first = [], Counter(), ""
    if len(results) > MAX_RESULTS_PER_MESSAGE:
        reasons["too many results"] = len(results) - MAX_RESULTS_PER_MESSAGE
        first = f"{len(results)} results in one message, at most {MAX_RESULTS_PER_MESSAGE}"
    now = timezone.now()
    for raw in results[:MAX_RESULTS_PER_MESSAGE]:
        try:
            rows.append(parse_result(raw, now))
        except MalformedResult as exc:
            first = first or str(exc)
            reasons[exc.field] += 1
    if reasons:
        log.warning("ingest: rejected %d results from %s/%s (%s); first: %s", sum(reasons.values()), region,
                    excerpt(node, 100), ", ".join(f"{k} ×{v}" for k, v in reasons.items()), first)
    return rows, reasons


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
