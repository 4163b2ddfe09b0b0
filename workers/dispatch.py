"""Claiming due monitors and handing them to the regions' probe queues.

One beat tick runs `dispatch_due_checks`; any number of ticks may overlap,
because a claim locks its rows with `FOR UPDATE SKIP LOCKED` and advances
`next_check_at` in the same statement, so no monitor is taken twice.

A tick claims what falls due before the next tick (LOOPR_DISPATCH_LOOKAHEAD)
and the probe node holds each check until its slot: checks start on time
instead of up to a whole tick late.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Callable, Iterable

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from monitors.models import Monitor

from .models import Region, queue_for

log = logging.getLogger(__name__)

PAYLOAD_FIELDS = (
    "id", "interval", "url", "timeout", "method", "headers", "body", "expected_status", "keyword", "follow_redirects",
)
CLAIM_CHUNK = 2000

# PostgreSQL: claim, advance and read in one round trip. The next slot is the
# first one after `now` on the monitor's own grid (slot + k * interval): no
# drift, and after downtime one check per monitor instead of a burst of
# catch-up checks.
PG_CLAIM_SQL = """
WITH due AS (
    SELECT id, next_check_at AS slot
    FROM monitors_monitor
    WHERE paused = false AND next_check_at <= %(until)s
    ORDER BY next_check_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE monitors_monitor AS m
SET next_check_at = due.slot + make_interval(
    secs => m.interval * GREATEST(floor(extract(epoch FROM (%(now)s - due.slot)) / m.interval) + 1, 1)
)
FROM due
WHERE m.id = due.id
RETURNING due.slot, {fields}
""".format(fields=", ".join(f"m.{f}" for f in PAYLOAD_FIELDS))


def next_slot(slot: datetime, interval: int, now: datetime) -> datetime:
    steps = math.floor((now - slot).total_seconds() / interval) + 1
    return slot + timedelta(seconds=interval * max(steps, 1))


def claim_due_checks(now: datetime, limit: int, lookahead: float = 0.0) -> list[dict]:
    """Claim up to `limit` monitors due by `now + lookahead`; returns their
    check payloads (with `slot`)."""
    until = now + timedelta(seconds=lookahead)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(PG_CLAIM_SQL, {"now": now, "until": until, "limit": limit})
            rows = cursor.fetchall()
        return [_payload(row[0], dict(zip(PAYLOAD_FIELDS, row[1:]))) for row in rows]
    return _claim_portable(now, until, limit)


def _claim_portable(now: datetime, until: datetime, limit: int) -> list[dict]:
    # SQLite (the quick start) has no row locks; its single writer makes the
    # claim atomic anyway.
    rows = list(
        Monitor.objects.select_for_update(skip_locked=connection.features.has_select_for_update_skip_locked)
        .filter(paused=False, next_check_at__lte=until)
        .order_by("next_check_at")
        .only(*PAYLOAD_FIELDS, "next_check_at")[:limit]
    )
    payloads = []
    for monitor in rows:
        slot = monitor.next_check_at
        monitor.next_check_at = next_slot(slot, monitor.interval, now)
        payloads.append(_payload(slot, {f: getattr(monitor, f) for f in PAYLOAD_FIELDS}))
    Monitor.objects.bulk_update(rows, ["next_check_at"], batch_size=500)
    return payloads


def _payload(slot: datetime, row: dict) -> dict:
    row["monitor"] = row.pop("id")
    row["slot"] = slot.isoformat()
    if isinstance(row["headers"], str):  # a raw cursor may hand back JSON text
        row["headers"] = json.loads(row["headers"])
    return row


def route(checks: list[dict], live_regions: list[str]) -> dict[str, list[dict]]:
    """Group checks by the region queues that must run them."""
    chosen: dict[int, list[str]] = defaultdict(list)
    through = Monitor.regions.through
    ids = [c["monitor"] for c in checks]
    for monitor_id, region_name in through.objects.filter(monitor_id__in=ids).values_list(
        "monitor_id", "region__name"
    ):
        chosen[monitor_id].append(region_name)
    live = set(live_regions)
    by_region: dict[str, list[dict]] = defaultdict(list)
    unserved = 0
    for check in checks:
        regions = chosen.get(check["monitor"]) or live_regions
        served = [r for r in regions if r in live]
        if not served:
            unserved += 1
        for region in served:
            by_region[region].append(check)
    if unserved:
        log.warning("dispatch: %d due checks have no region with a live probe worker", unserved)
    return by_region


def batches(checks: list[dict], size: int) -> Iterable[list[dict]]:
    for start in range(0, len(checks), size):
        yield checks[start : start + size]


def dispatch_due(send: Callable[[str, list[dict], float], None], now: datetime | None = None) -> int:
    """Claim everything due and send it; returns the number of checks sent.

    The claim and the send share a transaction: if sending fails the claim is
    rolled back and the monitors stay due. A crash between send and commit can
    send a slot twice, which the results' natural key absorbs.
    """
    deadline = time.monotonic() + 0.9
    live_regions = list(Region.objects.live().values_list("name", flat=True))
    sent = 0
    remaining = settings.LOOPR_DISPATCH_LIMIT
    while remaining > 0:
        with transaction.atomic():
            checks = claim_due_checks(now or timezone.now(), min(CLAIM_CHUNK, remaining),
                                      settings.LOOPR_DISPATCH_LOOKAHEAD)
            for region, region_checks in route(checks, live_regions).items():
                for batch in batches(region_checks, settings.LOOPR_BATCH_SIZE):
                    # A batch that waited through two of its intervals is stale:
                    # newer slots of the same monitors are already queued.
                    expires = max(2.0 * min(c["interval"] for c in batch), 60.0)
                    send(queue_for(region), batch, expires)
                    sent += len(batch)
        remaining -= len(checks)
        if len(checks) < CLAIM_CHUNK or time.monotonic() > deadline:
            break
    return sent

