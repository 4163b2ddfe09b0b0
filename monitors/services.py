"""Cross-model work on results: ingest and retention."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from workers.models import Region

from notifications.choices import Event
from notifications.services import notify

from .choices import ErrorKind, Health
from .models import Check, CheckResult, Incident, MaintenanceWindow, Monitor, StatusChange, Transition

log = logging.getLogger(__name__)

REGION_NAME = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")
ERROR_KINDS = set(ErrorKind.values)
MAX_ERROR_CHARS = 2000
INSERT_CHUNK = 500
RESULT_COLUMNS = (
    "monitor_id", "region_id", "node", "scheduled_at", "checked_at", "ok",
    "latency_ms", "status_code", "error_kind", "error", "tls_expires_at", "in_maintenance", "impaired",
)
# The monitor's state that ingest moves; written back with one UPDATE per row.
STATUS_FIELDS = [
    "status", "health", "status_changed_at", "alerted_health", "is_flapping", "last_checked_at", "last_slot_at",
    "consecutive_failures", "consecutive_successes", "failing_since", "failure_kind", "failure_message",
    "failure_regions", "current_incident_id", "region_results", "verdict_due_at",
]
MONITOR_FIELDS = [
    "name", "url", "timeout", "paused", "in_maintenance", "retries", "recovery_checks", "latency_threshold_ms",
    "flap_threshold", "flap_window", "quorum", *STATUS_FIELDS,
]


class MalformedResult(ValueError):
    pass


@dataclass
class IngestOutcome:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    status_changes: int = 0


def _aware(value: object, name: str, required: bool = True) -> datetime | None:
    if value is None and not required:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        raise MalformedResult(f"{name}: expected an ISO-8601 time with offset, got {value!r}")
    return parsed


def parse_result(raw: object) -> dict:
    """Validate one result from a probe node into column values."""
    if not isinstance(raw, dict):
        raise MalformedResult(f"expected an object, got {type(raw).__name__}")
    monitor, ok = raw.get("monitor"), raw.get("ok")
    if not isinstance(monitor, int) or isinstance(monitor, bool) or monitor <= 0:
        raise MalformedResult(f"monitor: expected a positive integer, got {monitor!r}")
    if not isinstance(ok, bool):
        raise MalformedResult(f"ok: expected a boolean, got {ok!r}")
    latency, code = raw.get("latency_ms"), raw.get("status_code")
    if latency is not None and (not isinstance(latency, (int, float)) or latency < 0):
        raise MalformedResult(f"latency_ms: expected a non-negative number, got {latency!r}")
    if code is not None and (not isinstance(code, int) or not 0 <= code <= 999):
        raise MalformedResult(f"status_code: expected an HTTP status, got {code!r}")
    kind = raw.get("error_kind") or (ErrorKind.OK if ok else ErrorKind.INTERNAL)
    if kind not in ERROR_KINDS:
        raise MalformedResult(f"error_kind: unknown kind {kind!r}")
    return {
        "monitor_id": monitor,
        "scheduled_at": _aware(raw.get("slot"), "slot"),
        "checked_at": _aware(raw.get("started_at"), "started_at"),
        "ok": ok,
        "latency_ms": float(latency) if latency is not None else None,
        "status_code": code,
        "error_kind": kind,
        "error": str(raw.get("error") or "")[:MAX_ERROR_CHARS],
        "tls_expires_at": _aware(raw.get("tls_expires_at"), "tls_expires_at", required=False),
        "impaired": raw.get("impaired") is True,
    }


def region_id(name: str) -> int:
    return Region.objects.get_or_create(name=name)[0].pk


def ingest_results(region: str, node: str, results: list) -> IngestOutcome:
    """Store a probe node's results and move the monitors' status.

    Idempotent: a result whose (monitor, slot, region) is already stored is
    ignored, so a redelivered batch changes nothing.
    """
    outcome = IngestOutcome()
    if not isinstance(region, str) or not REGION_NAME.match(region):
        log.error("ingest: dropped %s results with invalid region %r", len(results or []), region)
        outcome.rejected = len(results) if isinstance(results, list) else 1
        return outcome
    if not isinstance(results, list):
        log.error("ingest: dropped a message whose results are a %s", type(results).__name__)
        outcome.rejected = 1
        return outcome
    rows = []
    for raw in results:
        try:
            rows.append(parse_result(raw))
        except MalformedResult as exc:
            outcome.rejected += 1
            log.warning("ingest: rejected a result from %s/%s: %s", region, str(node)[:200], exc)
    if not rows:
        return outcome
    rid, node = region_id(region), str(node)[:200]
    with transaction.atomic():
        # Locked in id order so that concurrent ingests never deadlock.
        monitors = {
            m.pk: m
            for m in Monitor.objects.select_for_update()
            .filter(pk__in={r["monitor_id"] for r in rows})
            .order_by("pk")
            .only(*MONITOR_FIELDS)
        }
        rows = [r for r in rows if r["monitor_id"] in monitors]  # deleted meanwhile
        for row in rows:
            row["in_maintenance"] = monitors[row["monitor_id"]].in_maintenance
        inserted = _insert_new(rows, rid, node)
        outcome.stored = len(inserted)
        outcome.duplicates = len(rows) - len(inserted)
        per_monitor: dict[int, list[dict]] = defaultdict(list)
        for row in inserted:
            per_monitor[row["monitor_id"]].append(row)
        expected = expected_regions(list(per_monitor))
        now = timezone.now()
        touched = []
        for monitor_id, monitor_rows in per_monitor.items():
            monitor = monitors[monitor_id]
            waits_for = expected[monitor_id] | {region}
            # Slot by slot: a node reporting a backlog of slots in one message
            # still counts each failure toward the retries.
            for row in sorted(monitor_rows, key=lambda r: (r["scheduled_at"], r["checked_at"])):
                monitor.note_region_result(region, row["scheduled_at"], row["checked_at"], row["ok"],
                                           row["error_kind"], row["error"], row["latency_ms"], row["impaired"])
                if monitor.last_checked_at is None or row["checked_at"] > monitor.last_checked_at:
                    monitor.last_checked_at = row["checked_at"]
                verdict = monitor.verdict(waits_for, now, settings.LOOPR_VERDICT_GRACE)
                outcome.status_changes += judge(monitor, verdict)
            touched.append(monitor)
        _save_status(touched)
    return outcome


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


def judge(monitor: Monitor, check: Check | None) -> int:
    """Feed a slot's verdict to the state machine and act on what it says;
    returns the number of transitions (0 or 1)."""
    changed = 0
    if check is not None:
        transition = monitor.apply_check(check)
        if transition is not None:
            record_transition(monitor, transition)
            changed = 1
    # Settled by the checks' own clock, as the changes were counted.
    if monitor.last_checked_at is not None:
        monitor.settle_flapping(monitor.last_checked_at)
    announce(monitor)
    return changed


def decide_overdue_verdicts(now: datetime | None = None, limit: int = 1000) -> int:
    """Slots some expected region never reported (its node died, its link is
    cut): judged with what arrived, once their deadline passed."""
    now = now or timezone.now()
    decided = 0
    for pk in Monitor.objects.filter(verdict_due_at__lte=now).values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            monitor = Monitor.objects.select_for_update().filter(pk=pk, verdict_due_at__lte=now).first()
            if monitor is None:
                continue  # ingest decided it meanwhile
            judge(monitor, monitor.verdict(set(), now, settings.LOOPR_VERDICT_GRACE, force=True))
            _save_status([monitor])
            decided += 1
    return decided


def record_transition(monitor: Monitor, transition: Transition) -> None:
    """Keep the timeline, open or close the incident, and notice flapping."""
    if transition.new == Health.DOWN and monitor.current_incident_id is None:
        monitor.current_incident = Incident.objects.create(
            monitor=monitor, started_at=monitor.failing_since or transition.at, confirmed_at=transition.at,
            cause_kind=monitor.failure_kind, cause=monitor.failure_message,
            regions=sorted(monitor.failure_regions) or ([transition.region] if transition.region else []),
            region_errors=monitor.failure_regions,
        )
    StatusChange.objects.create(
        monitor=monitor, incident_id=monitor.current_incident_id, old=transition.old, new=transition.new,
        at=transition.at, cause=transition.cause, region=transition.region,
    )
    if transition.old == Health.DOWN and monitor.current_incident_id is not None:
        Incident.objects.filter(pk=monitor.current_incident_id).update(resolved_at=transition.at)
        monitor.current_incident = None
    if not monitor.is_flapping:
        window_start = transition.at - timedelta(seconds=monitor.flap_window)
        if monitor.status_changes.filter(at__gt=window_start).count() > monitor.flap_threshold:
            monitor.is_flapping = True
            notify(monitor, Event.FLAPPING, incident=monitor.current_incident, at=transition.at,
                   details=f"changed state more than {monitor.flap_threshold} times in "
                           f"{monitor.flap_window // 60} min; alerts are held until it settles")


def announce(monitor: Monitor, at: datetime | None = None) -> None:
    """Tell the channels whatever changed since they were last told."""
    announcement = monitor.announcement()
    if announcement is None:
        return
    incident, details = None, ""
    if announcement.degraded_only:
        last = monitor.status_changes.order_by("-at", "-id").first()
        details = last.cause if last else ""
    elif announcement.event == Event.DOWN:
        incident = monitor.current_incident
    else:  # a recovery carries the outage it ends
        incident = monitor.incidents.order_by("-started_at").first()
    notify(monitor, announcement.event, incident=incident, degraded_only=announcement.degraded_only,
           details=details, at=at or monitor.status_changed_at)


def sync_maintenance(now: datetime | None = None) -> tuple[int, int]:
    """Flag the monitors of active windows; when a window ends, whatever
    happened meanwhile is announced (a target still down alerts then)."""
    now = now or timezone.now()
    active: set[int] = set()
    for window in MaintenanceWindow.objects.prefetch_related("monitors"):
        if window.active_at(now):
            active.update(m.pk for m in window.monitors.all())
    entering = list(Monitor.objects.filter(in_maintenance=False, pk__in=active).values_list("pk", flat=True))
    leaving = list(Monitor.objects.filter(in_maintenance=True).exclude(pk__in=active).values_list("pk", flat=True))
    for pk in entering + leaving:
        with transaction.atomic():
            # Claimed by a conditional update: of two overlapping syncs (the
            # periodic one, one run by a save) only one moves each monitor and
            # announces, even on SQLite, which has no row locks.
            entered = pk in active
            if not Monitor.objects.filter(pk=pk, in_maintenance=not entered).update(in_maintenance=entered):
                continue
            monitor = Monitor.objects.select_for_update().get(pk=pk)
            monitor.refresh_status(now)
            announce(monitor, now)  # before saving: it records what was told
            monitor.save()
    return len(entering), len(leaving)


def _save_status(monitors: list[Monitor]) -> None:
    """One parameterised UPDATE sent for many rows in a single round trip
    (psycopg pipelines executemany); bulk_update's CASE WHEN statements cost
    ~1 ms of CPU per row here."""
    if not monitors:
        return
    by_attname = {f.attname: f for f in Monitor._meta.concrete_fields}
    fields = [by_attname[name] for name in STATUS_FIELDS]
    sql = (
        f"UPDATE {Monitor._meta.db_table} SET "
        + ", ".join(f"{field.column} = %s" for field in fields)
        + " WHERE id = %s"
    )
    # Field.get_db_prep_save costs ~40 µs for a datetime (naive-time checks);
    # the backend's adapter alone is what the database needs.
    adapters = [
        connection.ops.adapt_datetimefield_value if isinstance(field, models.DateTimeField)
        else (lambda value, field=field: field.get_db_prep_save(value, connection))
        if isinstance(field, models.JSONField) else None
        for field in fields
    ]
    params = [
        [adapt(v) if adapt is not None and v is not None else v
         for adapt, v in zip(adapters, (getattr(m, field.attname) for field in fields))] + [m.pk]
        for m in monitors
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _insert_new(rows: list[dict], rid: int, node: str) -> list[dict]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING: one statement per chunk, and
    it tells which rows were new (both PostgreSQL and SQLite ≥ 3.35 speak it)."""
    adapt = connection.ops.adapt_datetimefield_value
    table = CheckResult._meta.db_table
    inserted = []
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        params, keyed = [], {}
        for row in chunk:
            keyed[(row["monitor_id"], row["scheduled_at"])] = row
            params.extend((
                row["monitor_id"], rid, node, adapt(row["scheduled_at"]), adapt(row["checked_at"]), row["ok"], row["latency_ms"],
                row["status_code"], row["error_kind"], row["error"], adapt(row["tls_expires_at"]),
                row["in_maintenance"], row["impaired"],
            ))
        placeholders = ", ".join(["(" + ", ".join(["%s"] * len(RESULT_COLUMNS)) + ")"] * len(chunk))
        sql = (
            f"INSERT INTO {table} ({', '.join(RESULT_COLUMNS)}) VALUES {placeholders} "
            f"ON CONFLICT (monitor_id, scheduled_at, region_id) DO NOTHING RETURNING monitor_id, scheduled_at"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for monitor_id, slot in cursor.fetchall():
                inserted.append(keyed[(monitor_id, _as_aware(slot))])
    return inserted


def _as_aware(value: datetime | str) -> datetime:
    # PostgreSQL hands back aware datetimes; SQLite naive UTC (or text).
    if isinstance(value, str):
        value = parse_datetime(value)
    return value if value.tzinfo else value.replace(tzinfo=dt_timezone.utc)


def prune_results(now: datetime | None = None, batch_size: int = 5000, budget_seconds: float = 20.0) -> tuple[int, bool]:
    """Delete results past retention in short transactions.

    Returns (deleted, more_left) so the caller can re-enqueue itself instead
    of holding one long lock or one huge transaction.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.LOOPR_RESULTS_RETENTION_DAYS)
    deadline = timezone.now() + timedelta(seconds=budget_seconds)
    deleted = 0
    while True:
        ids = list(
            CheckResult.objects.filter(scheduled_at__lt=cutoff).order_by("scheduled_at").values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return deleted, False
        deleted += CheckResult.objects.filter(id__in=ids)._raw_delete(CheckResult.objects.db)
        if len(ids) < batch_size:
            return deleted, False
        if timezone.now() >= deadline:
            return deleted, True
