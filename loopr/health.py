"""`/healthz`: whether Loopr is doing its work, not only whether it runs.

503, with a body naming what is wrong, when the database or the broker does
not answer, when the dispatch tick has stopped (beat or the central worker is
gone), when no results have come in for a while although a live region has
monitors to check, or when a central queue backs up. `?verbose=1` adds each
component's age or backlog and its limit.

Start-up: for `LOOPR_HEALTH_STARTUP_GRACE` seconds after this process
started, a loop that has not run since is `starting`, not failing. A
timestamp left from before the start (the broker keeps its data across
restarts) counts only after the grace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.http import JsonResponse

from loopr import freshness, tallies
from monitors.models import Monitor
from monitors.regions import Region

# Seconds the broker gets to answer: well within a load balancer's patience.
BROKER_TIMEOUT = 2.0
CENTRAL_QUEUES = ("dispatch", "central", "ingest", "notify", "heartbeat")
# The web's start; loopr.wsgi imports this module so that it is the process's
# start and not that of its first request.
STARTED_AT = time.time()


@dataclass
class Component:
    state: str  # "ok", or what is wrong (or why nothing is expected of it yet)
    healthy: bool
    detail: dict = field(default_factory=dict)


@dataclass
class Readings:
    ticked_at: float | None
    ingested_at: float | None
    backlog: dict[str, int]
    tallies: dict[str, int] = field(default_factory=dict)
    owed: tuple[int, int] = (0, 0)
    swept_at: float | None = None


def healthz(request):
    now = time.time()
    broker, readings = _broker()
    components = {"database": _database(), "broker": broker, **_freshness(now, readings)}
    healthy = all(c.healthy for c in components.values())
    body: dict = {"status": "ok" if healthy else "unavailable", **{n: c.state for n, c in components.items()}}
    if request.GET.get("verbose", "") not in ("", "0", "false"):
        body["details"] = {n: {"state": c.state, **c.detail} for n, c in components.items()}
        if readings is not None:
            body["details"]["accounting"] = _accounting(readings)
        # Malformed messages the workers dropped, per queue and reason (loopr/broker.py).
        body["dropped_messages"] = _dropped() if broker.healthy else None
    return JsonResponse(body, status=200 if healthy else 503)


def _dropped() -> dict[str, dict[str, int]] | None:
    from loopr.broker import dropped_counts
    from loopr.celery import app

    options = {"socket_connect_timeout": BROKER_TIMEOUT, "socket_timeout": BROKER_TIMEOUT}
    try:
        with app.connection_for_write(transport_options=options) as conn:
            return dropped_counts(conn.default_channel.client)
    except Exception:  # the broker's own state is reported above
        return None


def _database() -> Component:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Component("ok", True)
    except Exception as exc:  # any failure means "not healthy", with its reason
        return Component(f"error: {type(exc).__name__}", False)


def _broker() -> tuple[Component, Readings | None]:
    from loopr.celery import app

    # Socket timeouts as well: a broker behind a firewall that drops packets
    # would otherwise hold a web worker for minutes, not fail the check.
    options = {"socket_connect_timeout": BROKER_TIMEOUT, "socket_timeout": BROKER_TIMEOUT}
    try:
        with app.connection_for_write(transport_options=options) as conn:
            conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT)
            # One round trip through the transport's own client: it answers,
            # not just its socket, and tells how far behind everything is.
            return Component("ok", True), _read(conn.default_channel.client)
    except Exception as exc:
        return Component(f"error: {type(exc).__name__}", False), None


def _read(client) -> Readings:
    from workers import ledger

    pipe = client.pipeline(transaction=False)
    pipe.get(freshness.key(freshness.DISPATCH))
    pipe.get(freshness.key(freshness.INGEST))
    pipe.get(freshness.key(freshness.CENTRAL))
    pipe.hgetall(tallies.KEY)
    pipe.zcard(ledger.OWED)
    pipe.zcard(ledger.RESENT)
    for queue in CENTRAL_QUEUES:
        pipe.llen(queue)
    ticked, ingested, swept, counts, owed, resent, *lengths = pipe.execute()
    return Readings(freshness.parse(ticked), freshness.parse(ingested), dict(zip(CENTRAL_QUEUES, lengths)),
                    tallies.parse(counts), (owed, resent), freshness.parse(swept))


def _accounting(readings: Readings) -> dict:
    """Where every due slot went that has no result (never a reason to fail:
    a missed slot is recorded, not lost), since the broker's data began."""
    counts = readings.tallies
    return {
        "missed_slots": {name.removeprefix("missed."): n for name, n in counts.items() if name.startswith("missed.")},
        "refused_rows": counts.get("refused_rows", 0),
        "checks_owed": readings.owed[0],
        "checks_sent_again": readings.owed[1],
    }


def _freshness(now: float, readings: Readings | None) -> dict[str, Component]:
    if readings is None:
        unknown = Component("unknown: the broker does not answer", False)
        return {"dispatcher": unknown, "central": unknown, "ingest": unknown, "queues": unknown}
    return {
        "dispatcher": _dispatcher(now, readings.ticked_at),
        "central": _central(now, readings.swept_at),
        "ingest": _ingest(now, readings.ingested_at),
        "queues": _queues(readings.backlog),
    }


def _starting(now: float, last: float | None) -> bool:
    return (last is None or last < STARTED_AT) and now - STARTED_AT < settings.LOOPR_HEALTH_STARTUP_GRACE


def _age(now: float, last: float | None) -> float | None:
    return None if last is None else round(now - last, 1)


def _recent(now: float, last: float | None, limit: float) -> tuple[Component | None, dict]:
    """`ok` or `starting` when the loop ran within `limit` (or has not had the
    chance yet since this process started); None when it is late."""
    detail = {"age": _age(now, last), "limit": limit}
    if last is not None and now - last <= limit:
        return Component("ok", True, detail), detail
    if _starting(now, last):
        return Component("starting", True, detail), detail
    return None, detail


def _dispatcher(now: float, ticked_at: float | None) -> Component:
    limit = settings.LOOPR_HEALTH_DISPATCH_STALE
    healthy, detail = _recent(now, ticked_at, limit)
    if healthy is not None:
        return healthy
    if ticked_at is None:
        return Component("stale: no dispatch tick yet (is beat running, and the dispatcher?)", False, detail)
    return Component(f"stale: last dispatch tick {now - ticked_at:.0f} s ago, limit {limit:g} s "
                     "(is beat running, and the dispatcher?)", False, detail)


def _central(now: float, swept_at: float | None) -> Component:
    limit = settings.LOOPR_HEALTH_CENTRAL_STALE
    healthy, detail = _recent(now, swept_at, limit)
    if healthy is not None:
        return healthy
    since = "none yet" if swept_at is None else f"last {now - swept_at:.0f} s ago"
    return Component(f"stale: the central worker's notification sweep ({since}, limit {limit:g} s; "
                     "is the worker running?)", False, detail)


def _ingest(now: float, ingested_at: float | None) -> Component:
    limit = settings.LOOPR_HEALTH_INGEST_STALE
    healthy, detail = _recent(now, ingested_at, limit)
    if healthy is not None:
        return healthy
    try:
        expected = _results_expected(limit)
    except Exception as exc:
        return Component(f"unknown: {type(exc).__name__}", False, detail)
    if not expected:
        return Component("idle", True, detail)
    since = "none yet" if ingested_at is None else f"last {now - ingested_at:.0f} s ago"
    return Component(f"stale: no results ingested ({since}, limit {limit:g} s) while live regions "
                     "have monitors due", False, detail)


def _results_expected(within: float) -> bool:
    """A live region serves an unpaused monitor checked at least twice in
    `within` seconds: its result arrives within interval + timeout, which is
    less than two intervals, so at least one must have come in."""
    live = Region.objects.live()
    if not live.exists():
        return False
    # No regions chosen means every live region.
    served = Q(regions__isnull=True) | Q(regions__in=live)
    # Heartbeats are pinged, not probed: they owe ingest nothing.
    return Monitor.objects.filter(served, paused=False, interval__lte=within / 2).exclude(kind="heartbeat").exists()


def _queues(backlog: dict[str, int]) -> Component:
    limit = settings.LOOPR_HEALTH_MAX_BACKLOG
    over = [f"{queue} {length}" for queue, length in backlog.items() if length > limit]
    detail = {"backlog": backlog, "limit": limit}
    if over:
        return Component(f"backlog: {', '.join(over)} messages waiting, limit {limit}", False, detail)
    return Component("ok", True, detail)
