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

from monitors.choices import MonitorKind
from monitors.models import Monitor
from monitors.wire import CHECK_FIELDS, CheckPayload, check_payload

from .models import Region, queue_for

log = logging.getLogger(__name__)

# The monitor columns a check payload copies: every field but the claimed
# slot, `monitor` being the id.
PAYLOAD_COLUMNS = tuple("id" if name == "monitor" else name for name in CHECK_FIELDS if name != "slot")
CLAIM_CHUNK = 2000
CATCH_UP_BURST = 3

# PostgreSQL: claim, advance and read in one round trip. A claim takes every
# slot of a monitor due by `until`, if it is late by at most the catch-up
# window (LOOPR_DISPATCH_CATCH_UP or the monitor's interval, whichever is
# longer: a dispatch delayed a few seconds, a restart): those checks run late
# rather than not at all. Later than that (downtime), it takes the one oldest
# slot and moves on to the first slot after `now` on the monitor's own grid
# (slot + k * interval): no drift, and one check per monitor instead of a
# burst of catch-up checks. Catching up takes at most CATCH_UP_BURST slots of
# a monitor per tick, so a backlog drains over a few ticks instead of
# landing on the probes (and the target) at once.
PG_CLAIM_SQL = """
WITH due AS (
    SELECT id, next_check_at AS slot
    FROM monitors_monitor
    WHERE paused = false AND next_check_at <= %(until)s AND kind <> 'heartbeat'
    ORDER BY next_check_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE monitors_monitor AS m
SET next_check_at = due.slot + make_interval(secs => m.interval * CASE
    WHEN due.slot >= %(now)s - make_interval(secs => GREATEST(%(catch_up)s, m.interval))
    THEN LEAST(floor(extract(epoch FROM (%(until)s - due.slot)) / m.interval) + 1, %(burst)s)
    ELSE GREATEST(floor(extract(epoch FROM (%(now)s - due.slot)) / m.interval) + 1, 1)
END)
FROM due
WHERE m.id = due.id
RETURNING due.slot, m.next_check_at, {fields}
""".format(fields=", ".join(f"m.{f}" for f in PAYLOAD_COLUMNS))


def catching_up(slot: datetime, interval: int, now: datetime) -> bool:
    return (now - slot).total_seconds() <= max(settings.LOOPR_DISPATCH_CATCH_UP, interval)


def next_slot(slot: datetime, interval: int, now: datetime, until: datetime) -> datetime:
    """Where a monitor's schedule goes on after a claim at `now` (see PG_CLAIM_SQL)."""
    if catching_up(slot, interval, now):
        steps = min(math.floor((until - slot).total_seconds() / interval) + 1, CATCH_UP_BURST)
    else:
        steps = max(math.floor((now - slot).total_seconds() / interval) + 1, 1)
    return slot + timedelta(seconds=interval * steps)


def claimed_slots(slot: datetime, following: datetime, interval: int, now: datetime) -> list[datetime]:
    """The slots one claim took: all of them up to the next one when catching
    up, only the oldest after downtime."""
    if not catching_up(slot, interval, now):
        return [slot]
    count = round((following - slot).total_seconds() / interval)
    return [slot + timedelta(seconds=interval * k) for k in range(max(count, 1))]


def claim_due_checks(now: datetime, limit: int, lookahead: float = 0.0) -> list[CheckPayload]:
    """Claim up to `limit` monitors due by `now + lookahead`; returns their
    check payloads (with `slot`), one per slot claimed."""
    until = now + timedelta(seconds=lookahead)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(PG_CLAIM_SQL, {"now": now, "until": until, "limit": limit,
                                          "catch_up": settings.LOOPR_DISPATCH_CATCH_UP, "burst": CATCH_UP_BURST})
            rows = cursor.fetchall()
        return [
            _payload(slot, dict(zip(PAYLOAD_COLUMNS, row[2:])))
            for row in rows
            for slot in claimed_slots(row[0], row[1], row[2 + PAYLOAD_COLUMNS.index("interval")], now)
        ]
    return _claim_portable(now, until, limit)


def _claim_portable(now: datetime, until: datetime, limit: int) -> list[CheckPayload]:
    # SQLite (the quick start) has no row locks; its single writer makes the
    # claim atomic anyway.
    rows = list(
        Monitor.objects.select_for_update(skip_locked=connection.features.has_select_for_update_skip_locked)
        .filter(paused=False, next_check_at__lte=until).exclude(kind=MonitorKind.HEARTBEAT)
        .order_by("next_check_at")
        .only(*PAYLOAD_COLUMNS, "next_check_at")[:limit]
    )
    payloads = []
    for monitor in rows:
        slot = monitor.next_check_at
        monitor.next_check_at = next_slot(slot, monitor.interval, now, until)
        for claimed in claimed_slots(slot, monitor.next_check_at, monitor.interval, now):
            payloads.append(_payload(claimed, {f: getattr(monitor, f) for f in PAYLOAD_COLUMNS}))
    Monitor.objects.bulk_update(rows, ["next_check_at"], batch_size=500)
    return payloads


def _payload(slot: datetime, row: dict) -> CheckPayload:
    for name in ("headers", "assertions"):
        if isinstance(row[name], str):  # a raw cursor may hand back JSON text
            row[name] = json.loads(row[name])
    return check_payload(row["id"], slot, row)


def route(checks: list[CheckPayload], live_regions: list[str]
          ) -> tuple[dict[str, list[CheckPayload]], list[CheckPayload]]:
    """Group checks by the region queues that must run them; also returns
    the checks that no live region can take."""
    chosen: dict[int, list[str]] = defaultdict(list)
    through = Monitor.regions.through
    ids = [c["monitor"] for c in checks]
    for monitor_id, region_name in through.objects.filter(monitor_id__in=ids).values_list(
        "monitor_id", "region__name"
    ):
        chosen[monitor_id].append(region_name)
    live = set(live_regions)
    by_region: dict[str, list[CheckPayload]] = defaultdict(list)
    unserved = []
    for check in checks:
        regions = chosen.get(check["monitor"]) or live_regions
        served = [r for r in regions if r in live]
        if not served:
            unserved.append(check)
        for region in served:
            by_region[region].append(check)
    return by_region, unserved


def hold_unserved(checks: list[CheckPayload], now: datetime) -> int:
    """Give checks that no live region could take their slot back, so they
    run as soon as a node of theirs reports (the usual case: every node is
    still starting, and beat's first tick came before their first
    heartbeat). A slot older than its interval, or than three heartbeats,
    is given up: a region that silent is down, not starting. Returns how
    many were given up."""
    hold = 3 * settings.LOOPR_HEARTBEAT_INTERVAL
    by_slot: dict[datetime, list[int]] = defaultdict(list)
    given_up = 0
    for check in checks:
        slot = datetime.fromisoformat(check["slot"])
        if (now - slot).total_seconds() < min(check["interval"], hold):
            by_slot[slot].append(check["monitor"])
        else:
            given_up += 1
    for slot, ids in by_slot.items():
        # Only where the claim's own advance is still in place: an edit made
        # meanwhile (a new interval, a pause) wins.
        Monitor.objects.filter(id__in=ids, next_check_at__gt=slot).update(next_check_at=slot)
    if given_up:
        log.warning("dispatch: %d due checks skipped: no region with a live probe worker", given_up)
    return given_up


def batches(checks: list[CheckPayload], size: int) -> Iterable[list[CheckPayload]]:
    for start in range(0, len(checks), size):
        yield checks[start : start + size]


def dispatch_due(send: Callable[[str, list[CheckPayload], float], None], now: datetime | None = None) -> int:
    """Claim everything due and send it; returns the number of checks sent.

    The claim and the send share a transaction: if sending fails the claim is
    rolled back and the monitors stay due. A crash between send and commit can
    send a slot twice, which the results' natural key absorbs.
    """
    deadline = time.monotonic() + 0.9
    live_regions = list(Region.objects.live().values_list("name", flat=True))
    if not live_regions:
        # Nothing could run anywhere (every node still starting, or the
        # fleet gone): claim nothing, so the slots stay due for the first
        # node that reports, and a tick costs one query instead of claiming
        # and giving back every due monitor each second.
        return 0
    sent = 0
    remaining = settings.LOOPR_DISPATCH_LIMIT
    unserved: list[CheckPayload] = []
    while remaining > 0:
        with transaction.atomic():
            checks = claim_due_checks(now or timezone.now(), min(CLAIM_CHUNK, remaining),
                                      settings.LOOPR_DISPATCH_LOOKAHEAD)
            by_region, waiting = route(checks, live_regions)
            unserved += waiting
            for region, region_checks in by_region.items():
                for batch in batches(region_checks, settings.LOOPR_BATCH_SIZE):
                    # A batch that waited through two of its intervals is stale:
                    # newer slots of the same monitors are already queued.
                    expires = max(2.0 * min(c["interval"] for c in batch), 60.0)
                    send(queue_for(region), batch, expires)
                    sent += len(batch)
        remaining -= len(checks)
        if len(checks) < CLAIM_CHUNK or time.monotonic() > deadline:
            break
    # After the claims, or this tick would claim them again at once.
    if unserved:
        hold_unserved(unserved, now or timezone.now())
    return sent
