"""Claiming due monitors and handing them to the regions' probe queues.

One beat tick runs `dispatch_due_checks`; any number of ticks may overlap,
because a claim locks its rows with `FOR UPDATE SKIP LOCKED` and advances
`next_check_at` in the same statement, so no monitor is taken twice.

A tick claims what falls due before the next tick (LOOPR_DISPATCH_LOOKAHEAD)
and the probe node holds each check until its slot: checks start on time
instead of up to a whole tick late.

Nothing claimed is dropped: a late tick checks the slots of the catch-up
window and records the older ones as missed (`monitors/missed.py`), a check
no live region can take is held and then recorded missed, and every check
sent is entered in the ledger of what the probes owe (`ledger.py`), which the
re-dispatch sweep (`redispatch.py`) settles. The tick runs on the `dispatch`
queue, in a process of its own (Procfile `dispatcher`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from monitors.choices import MissedReason, MonitorKind
from monitors.missed import Missed, record_missed
from monitors.models import Monitor
from monitors.wire import CHECK_FIELDS, CheckPayload, check_payload

from .ledger import Ledger
from .models import Region, queue_for

log = logging.getLogger(__name__)

# The monitor columns a check payload copies: every field but the claimed
# slot, `monitor` being the id.
PAYLOAD_COLUMNS = tuple("id" if name == "monitor" else name for name in CHECK_FIELDS if name != "slot")
CLAIM_CHUNK = 2000
CATCH_UP_BURST = 3

# PostgreSQL: claim, advance and read in one round trip. A claim starts at
# the monitor's due slot, or, when that is older than the catch-up window
# (LOOPR_DISPATCH_CATCH_UP or the monitor's interval, whichever is longer),
# at the first slot of its own grid (slot + k * interval) within the window:
# the slots before it are recorded as missed, the ones after it are checked,
# late. It takes every slot due by `until`, at most CATCH_UP_BURST of a
# monitor per tick and, beyond each monitor's first, at most `budget` in all
# (oldest first), so a backlog drains over a few ticks instead of landing on
# the probes (and the targets) at once.
PG_CLAIM_SQL = """
WITH due AS (
    SELECT id, next_check_at AS slot, "interval" AS every
    FROM monitors_monitor
    WHERE paused = false AND next_check_at <= %(until)s AND kind <> 'heartbeat'
    ORDER BY next_check_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), windowed AS (
    SELECT id, slot, every, CASE
        WHEN slot >= %(now)s - make_interval(secs => GREATEST(%(catch_up)s, every)) THEN slot
        ELSE slot + make_interval(secs => every * ceil(extract(epoch FROM (
            %(now)s - make_interval(secs => GREATEST(%(catch_up)s, every)) - slot)) / every))
    END AS start
    FROM due
), wanted AS (
    SELECT id, slot, start, LEAST(floor(extract(epoch FROM (%(until)s - start)) / every) + 1, %(burst)s) AS n
    FROM windowed
), budgeted AS (
    SELECT id, slot, start,
           GREATEST(1, LEAST(n, 1 + %(budget)s - (sum(n - 1) OVER (ORDER BY slot, id) - (n - 1))))::int AS steps
    FROM wanted
)
UPDATE monitors_monitor AS m
SET next_check_at = b.start + make_interval(secs => m.interval * b.steps)
FROM budgeted AS b
WHERE m.id = b.id
RETURNING b.slot, b.start, b.steps, {fields}
""".format(fields=", ".join(f"m.{f}" for f in PAYLOAD_COLUMNS))


@dataclass
class Claim:
    """What one tick took: the checks to send, the runs of slots that fell
    out of the catch-up window, and how much of the budget it used."""

    checks: list[CheckPayload] = field(default_factory=list)
    # (monitor id, first slot, last slot, interval)
    skipped: list[tuple[int, datetime, datetime, int]] = field(default_factory=list)
    extra: int = 0


def window_start(slot: datetime, interval: int, now: datetime) -> datetime:
    """The first slot to check of a monitor due since `slot` (see PG_CLAIM_SQL)."""
    earliest = now - timedelta(seconds=max(settings.LOOPR_DISPATCH_CATCH_UP, interval))
    if slot >= earliest:
        return slot
    return slot + timedelta(seconds=interval * math.ceil((earliest - slot).total_seconds() / interval))


def plan(slot: datetime, interval: int, now: datetime, until: datetime, budget: int) -> tuple[datetime, int]:
    """Where a claim starts and how many slots it takes (see PG_CLAIM_SQL)."""
    start = window_start(slot, interval, now)
    wanted = min(math.floor((until - start).total_seconds() / interval) + 1, CATCH_UP_BURST)
    return start, max(1, min(wanted, 1 + budget))


def claim_due_checks(now: datetime, limit: int, lookahead: float = 0.0, budget: int | None = None) -> Claim:
    """Claim up to `limit` monitors due by `now + lookahead`: their check
    payloads (with `slot`), one per slot claimed, and the slots skipped."""
    until = now + timedelta(seconds=lookahead)
    budget = settings.LOOPR_DISPATCH_CATCH_UP_BUDGET if budget is None else budget
    if connection.vendor != "postgresql":
        return _claim_portable(now, until, limit, budget)
    with connection.cursor() as cursor:
        cursor.execute(PG_CLAIM_SQL, {"now": now, "until": until, "limit": limit, "budget": budget,
                                      "catch_up": settings.LOOPR_DISPATCH_CATCH_UP, "burst": CATCH_UP_BURST})
        rows = cursor.fetchall()
    claim = Claim()
    for slot, start, steps, *values in rows:
        _take(claim, slot, start, steps, dict(zip(PAYLOAD_COLUMNS, values)))
    return claim


def _take(claim: Claim, slot: datetime, start: datetime, steps: int, row: dict) -> None:
    interval = row["interval"]
    if start > slot:
        claim.skipped.append((row["id"], slot, start - timedelta(seconds=interval), interval))
    claim.extra += steps - 1
    for k in range(steps):
        claim.checks.append(_payload(start + timedelta(seconds=interval * k), row))


def _claim_portable(now: datetime, until: datetime, limit: int, budget: int) -> Claim:
    # SQLite (the quick start) has no row locks; its single writer makes the
    # claim atomic anyway.
    rows = list(
        Monitor.objects.select_for_update(skip_locked=connection.features.has_select_for_update_skip_locked)
        .filter(paused=False, next_check_at__lte=until).exclude(kind=MonitorKind.HEARTBEAT)
        .order_by("next_check_at", "id")
        .only(*PAYLOAD_COLUMNS, "next_check_at")[:limit]
    )
    claim = Claim()
    for monitor in rows:
        slot = monitor.next_check_at
        start, steps = plan(slot, monitor.interval, now, until, budget - claim.extra)
        monitor.next_check_at = start + timedelta(seconds=monitor.interval * steps)
        _take(claim, slot, start, steps, {f: getattr(monitor, f) for f in PAYLOAD_COLUMNS})
    Monitor.objects.bulk_update(rows, ["next_check_at"], batch_size=500)
    return claim


# Most monitors set no headers and no assertions: their JSON text is one of
# these, and a dict lookup is cheaper than a parse per row.
EMPTY_JSON = {"{}": dict, "[]": list}


def _payload(slot: datetime, row: dict) -> CheckPayload:
    for name in ("headers", "assertions"):
        value = row[name]
        if isinstance(value, str):  # a raw cursor may hand back JSON text
            empty = EMPTY_JSON.get(value)
            row[name] = empty() if empty is not None else json.loads(value)
    return check_payload(row["id"], slot, row)


def chosen_regions(monitor_ids: set[int]) -> Iterable[tuple[int, str, int]]:
    """(monitor id, region name, region id) of each region chosen by these monitors."""
    through = Monitor.regions.through
    if connection.vendor != "postgresql":
        return through.objects.filter(monitor_id__in=monitor_ids).values_list("monitor_id", "region__name",
                                                                               "region_id")
    # One array parameter, not one placeholder per id: a tick's 2,000 ids
    # cost the ORM and the driver's query splitting more than the query.
    region = through._meta.get_field("region").related_model
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.monitor_id, r.name, r.id FROM {through._meta.db_table} c "
            f"JOIN {region._meta.db_table} r ON r.id = c.region_id WHERE c.monitor_id = ANY(%s)",
            [list(monitor_ids)])
        return cursor.fetchall()


@dataclass
class Regions:
    """The regions one tick routes to: the live ones, and each claimed
    monitor's chosen ones (none chosen: every live region)."""

    live: dict[str, int]  # name -> id
    chosen: dict[int, dict[str, int]]  # monitor id -> {name: id}

    @classmethod
    def of(cls, live: dict[str, int], monitor_ids: Iterable[int]) -> Regions:
        chosen: dict[int, dict[str, int]] = defaultdict(dict)
        for monitor_id, name, region_id in chosen_regions(set(monitor_ids)):
            chosen[monitor_id][name] = region_id
        return cls(live, chosen)

    def expected(self, monitor_id: int) -> dict[str, int]:
        return self.chosen.get(monitor_id) or self.live


def route(checks: list[CheckPayload], regions: Regions
          ) -> tuple[dict[str, list[CheckPayload]], list[CheckPayload]]:
    """Group checks by the region queues that must run them; also returns
    the checks that no live region can take."""
    by_region: dict[str, list[CheckPayload]] = defaultdict(list)
    unserved = []
    for check in checks:
        served = [r for r in regions.expected(check["monitor"]) if r in regions.live]
        if not served:
            unserved.append(check)
        for region in served:
            by_region[region].append(check)
    return by_region, unserved


def hold_unserved(checks: list[CheckPayload], regions: Regions, now: datetime) -> int:
    """Give checks that no live region could take their slot back, so they
    run as soon as a node of theirs reports (the usual case: every node is
    still starting, and beat's first tick came before their first
    heartbeat). A slot older than its interval, or than three heartbeats,
    is recorded as missed (no_region) in each of its regions: a region that
    silent is down, not starting. Returns how many were recorded."""
    hold = 3 * settings.LOOPR_HEARTBEAT_INTERVAL
    by_slot: dict[datetime, list[int]] = defaultdict(list)
    missed: list[Missed] = []
    for check in checks:
        slot = datetime.fromisoformat(check["slot"])
        if (now - slot).total_seconds() < min(check["interval"], hold):
            by_slot[slot].append(check["monitor"])
        else:
            missed += [Missed(check["monitor"], region_id, slot, slot, check["interval"], MissedReason.NO_REGION)
                       for region_id in regions.expected(check["monitor"]).values()]
    for slot, ids in by_slot.items():
        # Only where the claim's own advance is still in place: an edit made
        # meanwhile (a new interval, a pause) wins.
        Monitor.objects.filter(id__in=ids, next_check_at__gt=slot).update(next_check_at=slot)
    if missed:
        record_missed(missed, now)
    return len(missed)


def skipped_runs(claim: Claim, regions: Regions, reason: str) -> list[Missed]:
    """The runs of slots a claim skipped, as missed records of each region."""
    return [
        Missed(monitor_id, region_id, first, last, interval, reason)
        for monitor_id, first, last, interval in claim.skipped
        for region_id in regions.expected(monitor_id).values()
    ]


def skip_reason(now: datetime, last_tick: float | None, last_served: float | None) -> str:
    """Why slots older than the catch-up window were not sent in time: no
    dispatch tick ran (beat, the dispatcher, the database or the broker was
    down), ticks ran while no region was live (they claim nothing then), or
    ticks ran and could not keep up."""
    stale = settings.LOOPR_HEALTH_DISPATCH_STALE
    at = now.timestamp()
    if last_tick is None or at - last_tick > stale:
        return MissedReason.DISPATCHER_DOWN
    if last_served is None or at - last_served > stale:
        return MissedReason.NO_REGION
    return MissedReason.OVERLOAD


def batches(checks: list[CheckPayload], size: int) -> Iterable[list[CheckPayload]]:
    for start in range(0, len(checks), size):
        yield checks[start : start + size]


def batch_expires(batch: list[CheckPayload]) -> float:
    """Seconds a batch stays valid in its queue. Longer than the broker's
    visibility timeout, so that a batch given back after its node died is
    still run (late) whatever the interval; past that, a batch that waited
    through two more intervals (a minute at least) is stale: newer slots of
    the same monitors are queued, and the re-dispatch sweep has recorded it."""
    return settings.LOOPR_BROKER_VISIBILITY_TIMEOUT + max(2.0 * min(c["interval"] for c in batch), 60.0)


@dataclass
class Tick:
    """What a dispatch tick knows of the ticks before it (kept in the broker,
    see loopr/freshness.py): when one last ran, and when one last found a
    live region."""

    last_tick: float | None = None
    last_served: float | None = None
    served: bool = False  # this tick found a live region


def dispatch_due(send: Callable[[str, list[CheckPayload], float], None], now: datetime | None = None,
                 tick: Tick | None = None, ledger: Ledger | None = None) -> int:
    """Claim everything due and send it; returns the number of checks sent.

    The claim and the send share a transaction: if sending fails the claim is
    rolled back and the monitors stay due. A crash between send and commit can
    send a slot twice, which the results' natural key absorbs. Each check sent
    is entered in the `ledger` first (the re-dispatch sweep's record of what
    is owed).
    """
    deadline = time.monotonic() + 0.9
    live = dict(Region.objects.live().values_list("name", "id"))
    if not live:
        # Nothing could run anywhere (every node still starting, or the
        # fleet gone): claim nothing, so the slots stay due for the first
        # node that reports, and a tick costs one query instead of claiming
        # and giving back every due monitor each second.
        return 0
    tick = tick or Tick(last_tick=time.time(), last_served=time.time())
    tick.served = True
    sent = 0
    remaining, budget = settings.LOOPR_DISPATCH_LIMIT, settings.LOOPR_DISPATCH_CATCH_UP_BUDGET
    unserved: list[tuple[CheckPayload, Regions]] = []
    while remaining > 0:
        with transaction.atomic():
            at = now or timezone.now()
            claim = claim_due_checks(at, min(CLAIM_CHUNK, remaining), settings.LOOPR_DISPATCH_LOOKAHEAD, budget)
            regions = Regions.of(live, (c["monitor"] for c in claim.checks))
            if claim.skipped:
                record_missed(skipped_runs(claim, regions, skip_reason(at, tick.last_tick, tick.last_served)), at)
            by_region, waiting = route(claim.checks, regions)
            unserved += [(check, regions) for check in waiting]
            for region, region_checks in by_region.items():
                for batch in batches(region_checks, settings.LOOPR_BATCH_SIZE):
                    if ledger is not None:
                        ledger.expect(region, batch)
                    send(queue_for(region), batch, batch_expires(batch))
                    sent += len(batch)
        claimed = len({c["monitor"] for c in claim.checks})
        remaining -= claimed
        budget -= claim.extra
        if claimed < CLAIM_CHUNK or time.monotonic() > deadline:
            break
    # After the claims, or this tick would claim them again at once.
    for regions, checks in _grouped(unserved):
        hold_unserved(checks, regions, now or timezone.now())
    return sent


def _grouped(unserved: list[tuple[CheckPayload, Regions]]) -> list[tuple[Regions, list[CheckPayload]]]:
    groups: dict[int, tuple[Regions, list[CheckPayload]]] = {}
    for check, regions in unserved:
        groups.setdefault(id(regions), (regions, []))[1].append(check)
    return list(groups.values())
