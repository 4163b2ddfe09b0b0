"""Heartbeats: monitors whose job reports to Loopr instead of being checked.

A ping (`receive_ping`) is recorded and, when it says how a run ended, is a
result judged by the same state machine as a probe's: one transaction holds
the monitor's lock, the ping, the result, the state change, the incident and
the outbox rows, so a 200 means all of it is stored. Most pings change no
state (a success of a heartbeat that is up, a log): those are one SQL
statement (`record_steady_ping`), which does nothing when its conditions do not
hold, and the ping then takes the state machine's path. A heartbeat whose
deadline (`next_ping_due_at`, mirrored into HeartbeatDeadline for the
sweep's index) passes without a success is late: the sweep
(`sweep_late_heartbeats`, every second from beat) records a `late` failure
for that deadline and moves it on to the next one. Heartbeats are never sent
to probe nodes.
"""

from __future__ import annotations

import logging
import sys
import uuid
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from loopr import tallies
from loopr.cache import remember

from .bulk import STATUS_FIELDS
from .choices import ErrorKind, Health, MonitorKind, PingKind
from .models import CheckResult, HeartbeatDeadline, Monitor, Ping
from .ping_rate import ping_allowed
from .quorum import Check
from .regions import Region
from .state import judge

log = logging.getLogger(__name__)

# The region a heartbeat's results are stored under: pings come from the job,
# not from a probe node, and no node ever serves this region.
PUSH_REGION = "push"
MAX_BODY_BYTES = 10_000
MAX_OPEN_RUNS = 20  # /start without an end, per heartbeat: the oldest are forgotten
CATCH_UP_LIMIT = 10_000
# What a ping or a missed deadline changes on the monitor, written in one UPDATE.
SAVED_FIELDS = [name.removesuffix("_id") for name in STATUS_FIELDS] + ["next_ping_due_at", "run_starts"]


@dataclass(frozen=True)
class PingRequest:
    """A ping as the web received it, already checked for shape."""

    kind: str  # PingKind
    exit_status: int | None = None
    rid: uuid.UUID | None = None
    method: str = "GET"
    body: str = ""
    remote_addr: str | None = None
    user_agent: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == PingKind.SUCCESS or (self.kind == PingKind.EXIT and self.exit_status == 0)


class RateLimited(Exception):
    pass


def receive_ping(key: uuid.UUID, ping: PingRequest) -> int | None:
    """Record a ping for the heartbeat `key`; returns its id, or None when
    there is no such heartbeat. Raises RateLimited past LOOPR_PING_RATE a
    minute."""
    # A success stores one ok result whichever path it takes: when the
    # heartbeat's id is known, the rate limit's round trip also counts it in
    # /metrics' checks_total (so a ping that then fails on the database is
    # counted all the same).
    tallied = _monitor_ids.get(key) if ping.ok else None
    if not ping_allowed(key, tally=tallies.check_field(tallied, True) if tallied else ""):
        raise RateLimited
    now = timezone.now()
    recorded = record_steady_ping(key, ping, now, tallied=tallied is not None)
    if recorded is not None:
        return recorded
    with transaction.atomic():
        monitor = Monitor.objects.select_for_update().filter(ping_uuid=key, kind=MonitorKind.HEARTBEAT).first()
        if monitor is None:
            return None
        remember_schedule(monitor)
        remember_id(key, monitor.pk)
        if monitor.last_slot_at is not None and now <= monitor.last_slot_at:
            # Each result's slot is its own (the natural key), and in order.
            now = monitor.last_slot_at + timedelta(microseconds=1)
        record = Ping(monitor=monitor, at=now, kind=ping.kind, exit_status=ping.exit_status, rid=ping.rid,
                      method=ping.method, body=ping.body, remote_addr=ping.remote_addr,
                      user_agent=ping.user_agent[:200])
        if ping.kind == PingKind.START:
            note_start(monitor, now, ping.rid)
        elif ping.kind != PingKind.LOG:
            record.duration_ms = run_duration_ms(monitor, now, ping.rid)
            judge_ping(monitor, ping, now, record.duration_ms, tallied=tallied == monitor.pk)
        record.save()
        monitor.save(update_fields=SAVED_FIELDS)
    return record.pk


# A ping that moves no state, in one statement (one round trip, committed on
# its own): a success of a heartbeat that is up, was announced up, is not
# paused or flapping and has no run open (so no duration to judge), stores
# its ping and its result and moves the counters and the deadline as
# `Monitor.apply_check` would; a log stores its ping. When the conditions do
# not hold it changes nothing and returns no row. The slot rule is
# receive_ping's: now, or just after the last slot.
_SLOT = "GREATEST(%(now)s, m.last_slot_at + interval '1 microsecond')"
_STEADY_SUCCESS = f"""
WITH region AS (SELECT id FROM {{region}} WHERE name = %(region)s),
moved AS (
    UPDATE {{monitor}} AS m SET
        last_slot_at = {_SLOT},
        last_checked_at = GREATEST({_SLOT}, m.last_checked_at),
        consecutive_successes = m.consecutive_successes + 1,
        consecutive_failures = 0,
        failing_since = NULL,
        next_ping_due_at = CASE WHEN m.schedule = ''
            THEN {_SLOT} + make_interval(secs => m."interval" + m.grace) ELSE %(cron_due)s END
    WHERE m.ping_uuid = %(key)s AND m.kind = %(heartbeat)s AND NOT m.paused AND NOT m.is_flapping
        AND m.health = %(up)s AND m.alerted_health = %(up)s AND m.run_starts = '{{{{}}}}'::jsonb
        AND (m.schedule = '' OR (m.schedule = %(schedule)s AND m.timezone = %(timezone)s AND m.grace = %(grace)s))
        AND EXISTS (SELECT FROM region)
    RETURNING m.id, m.last_slot_at AS slot, m.in_maintenance
),
result AS (
    INSERT INTO {{result}} (monitor_id, region_id, node_id, scheduled_at, checked_at, ok, latency_ms,
        status_code, error_kind, error, tls_expires_at, in_maintenance, impaired, missed_reason, missed_until)
    SELECT moved.id, region.id, NULL, moved.slot, moved.slot, TRUE, NULL, NULL, %(ok)s, '', NULL,
        moved.in_maintenance, FALSE, '', NULL
    FROM moved, region
)
INSERT INTO {{ping}} (monitor_id, at, kind, exit_status, rid, duration_ms, method, remote_addr, user_agent, body)
SELECT moved.id, moved.slot, %(kind)s, %(exit_status)s, %(rid)s, NULL, %(method)s, %(remote_addr)s,
    %(user_agent)s, %(body)s
FROM moved
RETURNING id, monitor_id
"""
_LOG = f"""
INSERT INTO {{ping}} (monitor_id, at, kind, exit_status, rid, duration_ms, method, remote_addr, user_agent, body)
SELECT m.id, {_SLOT}, %(kind)s, NULL, %(rid)s, NULL, %(method)s, %(remote_addr)s, %(user_agent)s, %(body)s
FROM {{monitor}} AS m
WHERE m.ping_uuid = %(key)s AND m.kind = %(heartbeat)s
RETURNING id
"""
# A cron heartbeat's next deadline is computed here (cronsim), not in SQL:
# the statement applies it only while the schedule it was computed from is
# still the monitor's. Learnt from each heartbeat's first ping in a process.
_schedules: dict[uuid.UUID, tuple[str, str, int]] = {}
# Each heartbeat's monitor id, learnt from its pings: what names its tally.
_monitor_ids: dict[uuid.UUID, int] = {}
MAX_REMEMBERED = 100_000


@lru_cache(maxsize=None)
def _sql(template: str) -> str:
    quote = connection.ops.quote_name
    return template.format(monitor=quote(Monitor._meta.db_table), result=quote(CheckResult._meta.db_table),
                           ping=quote(Ping._meta.db_table), region=quote(Region._meta.db_table))


def record_steady_ping(key: uuid.UUID, ping: PingRequest, now: datetime, tallied: bool = False) -> int | None:
    """The ping's id when it was one that moves no state, else None: it was
    not recorded, and needs receive_ping's full path. `tallied`: its result
    was counted in checks_total already."""
    if connection.vendor != "postgresql":
        return None  # one statement needs PostgreSQL's data-modifying WITH; SQLite takes the full path
    if ping.kind == PingKind.LOG:
        statement = _LOG
    elif ping.ok:
        statement = _STEADY_SUCCESS
    else:
        return None
    schedule, zone, grace = _schedules.get(key, (None, None, None))
    cron_due = None
    if schedule:
        probe = Monitor(schedule=schedule, timezone=zone, grace=grace)
        cron_due = probe.next_ping_due(now)
    params = {
        "now": now, "key": key, "region": PUSH_REGION, "heartbeat": MonitorKind.HEARTBEAT, "up": Health.UP,
        "ok": ErrorKind.OK, "schedule": schedule, "timezone": zone, "grace": grace, "cron_due": cron_due,
        "kind": ping.kind, "exit_status": ping.exit_status, "rid": ping.rid, "method": ping.method,
        "remote_addr": ping.remote_addr, "user_agent": ping.user_agent[:200], "body": ping.body,
    }
    try:
        row = _run_prepared(_sql(statement), params)
    except (InterfaceError, OperationalError):
        # Django's per-request health check (a `SELECT 1` round trip, a tenth
        # of a ping's cost) is skipped here; a connection that died while
        # idle is found by this statement instead, which then ran nowhere.
        if connection.in_atomic_block or connection.is_usable():
            raise
        connection.close()
        row = _run_prepared(_sql(statement), params)
    if row is None:
        return None
    if statement is _STEADY_SUCCESS and not tallied:
        # The result it stored counts in /metrics' checks_total like any other.
        tallies.count_checks([(row[1], True)])
        remember_id(key, row[1])
    return row[0]


def _run_prepared(sql: str, params: dict) -> tuple | None:
    with _prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


class _Prepared(psycopg.Cursor):
    """Server-side binding, and every statement prepared (planned once per
    connection): planning the statement cost PostgreSQL about as much as
    running it. Django's own cursors bind on the client and prepare nothing."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


# Django opens its connections with psycopg's prepare_threshold at None,
# which turns prepared statements off altogether, prepare=True included; a
# threshold no query reaches prepares only what asks (Django's own cursors
# bind on the client and never prepare).
PREPARE_WHEN_ASKED = sys.maxsize


def _prepared_cursor():
    # What connection.cursor() does, with the cursor above (Django's wrapper,
    # so its error translation and query logging still apply), less the
    # health check (see record_steady_ping).
    connection.ensure_connection()
    if connection.connection.prepare_threshold is None:
        connection.connection.prepare_threshold = PREPARE_WHEN_ASKED
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_Prepared(connection.connection))


def remember_schedule(monitor: Monitor) -> None:
    remember(_schedules, monitor.ping_uuid, (monitor.schedule, monitor.timezone, monitor.grace), MAX_REMEMBERED)


def remember_id(key: uuid.UUID, monitor_id: int) -> None:
    remember(_monitor_ids, key, monitor_id, MAX_REMEMBERED)


def note_start(monitor: Monitor, now: datetime, rid: uuid.UUID | None) -> None:
    """A run began: its end measures its duration, and a run that does not
    end within the grace is late."""
    starts = dict(monitor.run_starts or {})
    starts[str(rid or "")] = now.isoformat()
    monitor.run_starts = dict(sorted(starts.items(), key=lambda item: item[1])[-MAX_OPEN_RUNS:])
    if not monitor.paused:
        due = now + timedelta(seconds=monitor.grace)
        if monitor.next_ping_due_at is None or due < monitor.next_ping_due_at:
            monitor.next_ping_due_at = due


def run_duration_ms(monitor: Monitor, now: datetime, rid: uuid.UUID | None) -> float | None:
    started = (monitor.run_starts or {}).get(str(rid or ""))
    if started is None:
        return None
    monitor.run_starts = {k: v for k, v in monitor.run_starts.items() if k != str(rid or "")}
    return round((now - datetime.fromisoformat(started)).total_seconds() * 1000, 1)


def judge_ping(monitor: Monitor, ping: PingRequest, now: datetime, duration_ms: float | None,
               tallied: bool = False) -> None:
    """A run's end, as a result the state machine judges (`tallied`: counted
    in checks_total already)."""
    if ping.ok:
        kind, error = ErrorKind.OK, ""
    elif ping.kind == PingKind.EXIT:
        kind, error = ErrorKind.REPORTED, f"the job exited with status {ping.exit_status}"
    else:
        kind, error = ErrorKind.REPORTED, "the job reported a failure (/fail)"
    store_result(monitor, now, now, ping.ok, kind, error, duration_ms, tallied=tallied)
    if not monitor.paused:
        monitor.next_ping_due_at = monitor.next_ping_due(now)


def store_result(monitor: Monitor, slot: datetime, at: datetime, ok: bool, kind: str, error: str,
                 latency_ms: float | None, tallied: bool = False) -> None:
    CheckResult.objects.create(
        monitor=monitor, region_id=push_region_id(), node=None, scheduled_at=slot, checked_at=at, ok=ok,
        latency_ms=latency_ms, error_kind=kind, error=error, in_maintenance=monitor.in_maintenance,
    )
    if not tallied:
        transaction.on_commit(lambda: tallies.count_checks([(monitor.pk, ok)]))
    judge(monitor, Check(ok=ok, slot=slot, checked_at=at, latency_ms=latency_ms, error_kind=kind, error=error,
                         region=PUSH_REGION))


def push_region_id() -> int:
    return Region.objects.get_or_create(name=PUSH_REGION, defaults={"label": "Heartbeat pings"})[0].pk


def sweep_late_heartbeats(now: datetime | None = None, limit: int = 1000) -> int:
    """Heartbeats whose deadline passed without a success: each gets a
    `late` result for that deadline (the state machine takes it from there)
    and its next deadline. Returns how many were late."""
    now = now or timezone.now()
    due = HeartbeatDeadline.objects.filter(due_at__lte=now).order_by("due_at").values_list("monitor_id", flat=True)
    late = 0
    for pk in due[:limit]:
        with transaction.atomic():
            # Skipped while a ping holds it: that ping moves the deadline anyway.
            monitor = (Monitor.objects.select_for_update(skip_locked=True, of=("self",))
                       .filter(pk=pk, kind=MonitorKind.HEARTBEAT, paused=False, next_ping_due_at__lte=now).first())
            if monitor is None:
                continue
            record_late(monitor, now)
            late += 1
    return late


def record_late(monitor: Monitor, now: datetime) -> None:
    deadline = monitor.next_ping_due_at
    store_result(monitor, deadline, now, False, ErrorKind.LATE, late_message(monitor, deadline), None)
    # The next deadline after this one; after a long pause of the sweep, the
    # first one still ahead (one late result, not one per missed period).
    grace = timedelta(seconds=monitor.grace)
    following = monitor.next_ping_due(deadline - grace)
    for _ in range(CATCH_UP_LIMIT):
        if following > now:
            break
        following = monitor.next_ping_due(following - grace)
    monitor.next_ping_due_at = following
    monitor.save(update_fields=SAVED_FIELDS)


def late_message(monitor: Monitor, deadline: datetime) -> str:
    expected = f"on schedule '{monitor.schedule}' ({monitor.timezone})" if monitor.schedule else \
        f"every {monitor.interval} s"
    return f"no ping by {deadline.isoformat(timespec='seconds')} (expected {expected}, {monitor.grace} s grace)"


def prune_pings(now: datetime | None = None, batch_size: int = 5000) -> tuple[int, bool]:
    """Pings older than LOOPR_RESULTS_RETENTION_DAYS, deleted one batch per
    call (the task re-enqueues itself while more are left); returns
    (deleted, more_left)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.LOOPR_RESULTS_RETENTION_DAYS)
    ids = list(Ping.objects.filter(at__lt=cutoff).order_by("at").values_list("id", flat=True)[:batch_size])
    if not ids:
        return 0, False
    deleted = Ping.objects.filter(id__in=ids)._raw_delete(Ping.objects.db)
    return deleted, len(ids) == batch_size
