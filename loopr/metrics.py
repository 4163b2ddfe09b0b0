"""`/metrics`: the caller's monitors for Prometheus, read from current state
at scrape time (never per-process gauges, which would differ between web
workers), in Prometheus' text exposition format.

Authenticated by an API token, as `Authorization: Bearer <key>` (what
Prometheus' `authorization` scrape option sends) or `Token <key>`; anonymous
is a 401. Names follow Prometheus' naming guide (base units, `_total` for
counters) and blackbox_exporter's habits (`up`-style 1/0, expiry as a Unix
timestamp). Staff also get the system's own health: probe queues, nodes,
ingest lag, notifications, the dispatch tick.

Cost: a fixed number of queries, one broker round trip and one cache read,
whatever the number of monitors: the uptime ratios are kept computed by the
central worker after each roll-up (monitors/figures.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from rest_framework import exceptions

from loopr import freshness, tallies
from monitors import figures
from monitors.choices import MonitorStatus
from monitors.models import Monitor
from monitors.regions import Region, live_cutoff
from notifications.choices import DeliveryStatus
from notifications.models import Notification
from teams.authentication import ApiTokenAuthentication
from workers.choices import SERVING_STATES, NodeState
from workers.models import WorkerNode

STATUSES = [status.value for status in MonitorStatus]
UP = (MonitorStatus.UP, MonitorStatus.DEGRADED)


# Per monitor: (name, type, help). Written in the text exposition format by
# `monitor_lines`: prometheus_client's generate_latest validates and escapes
# every label of every sample, ~40 µs a series here, 5 s for the 120,000
# series of 10,000 monitors; the monitors' labels are escaped once each
# instead (measured in BENCHMARKS.md). The staff's system metrics, a few
# dozen series, go through prometheus_client's collector and exposition.
MONITOR_FAMILIES = [
    ("loopr_monitor_up", "gauge", "1 if the monitor is up (or degraded), 0 otherwise."),
    ("loopr_monitor_status", "gauge", "The monitor's status, one-hot."),
    ("loopr_monitor_latency_seconds", "gauge", "The latest successful check's latency, per region."),
    ("loopr_monitor_uptime_ratio", "gauge", "Uptime over the window, from rollups (to the last rolled-up hour)."),
    ("loopr_monitor_tls_cert_expiry_timestamp_seconds", "gauge",
     "When the latest TLS certificate seen expires (Unix time)."),
    ("loopr_monitor_checks_total", "counter", "Checks stored, by outcome (since the broker's data began)."),
]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Each status's seven one-hot samples after the monitor's labels, made once (70,000 lines a scrape).
ONE_HOT = {current: [f',status="{value}"}} {1 if value == current else 0}' for value in STATUSES]
           for current in [*STATUSES, None]}


def metrics(request: HttpRequest) -> HttpResponse:
    user, token = authenticated(request)
    if user is None:
        response = HttpResponse("Authentication required: Authorization: Bearer <API token>.\n", status=401,
                                content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="loopr"'
        return response
    # A team token sees its team's monitors only, as in the API.
    body = "\n".join(monitor_lines(Monitor.objects.visible_to(user, team=getattr(token, "team_id", None)))) + "\n"
    if user.is_staff:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SystemCollector())
        body += generate_latest(registry).decode()
    response = HttpResponse(body, content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response


def authenticated(request: HttpRequest) -> tuple:
    """The user and token of the request's API token, by the API's own token
    authentication (`Token <key>` or `Bearer <key>`); (None, None) without a
    valid one."""
    try:
        found = ApiTokenAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed:
        return None, None
    return found if found is not None else (None, None)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def monitor_lines(monitors) -> list[str]:
    """The monitors' families in the text format, each family's samples together."""
    ratios = figures.uptime_ratios()
    counts = _check_counts()
    up, status, latency, uptime, expiry, checks = samples = [[] for _ in MONITOR_FAMILIES]
    for pk, name, current, regions, expires in _rows(monitors):
        ident = f'monitor="{pk}",name="{_escape(name)}"'
        up.append(f"loopr_monitor_up{{{ident}}} {1 if current in UP else 0}")
        status.extend(f"loopr_monitor_status{{{ident}{tail}" for tail in ONE_HOT.get(current, ONE_HOT[None]))
        for region, report in sorted(_regions(regions).items()):
            seconds = _latency_seconds(report)
            if seconds is not None:
                latency.append(f'loopr_monitor_latency_seconds{{{ident},region="{_escape(region)}"}} {seconds!r}')
        for window, ratio in ratios.get(pk, {}).items():
            uptime.append(f'loopr_monitor_uptime_ratio{{{ident},window="{window}"}} {ratio!r}')
        if expires is not None:
            expiry.append(f"loopr_monitor_tls_cert_expiry_timestamp_seconds{{{ident}}} {expires.timestamp()!r}")
        for ok, result in ((True, "ok"), (False, "failed")):
            checks.append(f'loopr_monitor_checks_total{{{ident},result="{result}"}} '
                          f'{counts.get(tallies.check_field(pk, ok), 0)}')
    lines = []
    for (name, kind, text), family in zip(MONITOR_FAMILIES, samples):
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *family]
    return lines


def _rows(monitors) -> list[tuple]:
    """The monitors' rows as the driver gives them: for 10,000 monitors the
    ORM's per-row converters were a third of a scrape."""
    rows = monitors.order_by("pk").values_list("pk", "name", "status", "region_results", "tls_alerted_expiry")
    try:
        sql, params = rows.query.sql_with_params()
    except EmptyResultSet:
        return []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _regions(value) -> dict:
    # JSON text (PostgreSQL's jsonb and SQLite's JSON come as text here); most monitors' is small.
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _latency_seconds(report) -> float | None:
    latency = report.get("latency") if isinstance(report, dict) else None
    return latency / 1000 if isinstance(latency, (int, float)) and report.get("ok") else None


def _broker_client():
    from loopr.celery import app

    return app.connection_for_write(transport_options={"socket_connect_timeout": 2, "socket_timeout": 2})


def _check_counts() -> dict[str, int]:
    try:
        with _broker_client() as conn:
            return tallies.parse(conn.default_channel.client.hgetall(tallies.CHECKS))
    except Exception:  # the broker's trouble is /healthz's to report; the rest still scrapes
        return {}


class SystemCollector:
    """The system's own health, for staff."""

    def collect(self) -> Iterator[Metric]:
        regions = list(Region.objects.order_by("name").values_list("name", flat=True))
        yield self._nodes()
        yield self._notifications()
        try:
            with _broker_client() as conn:
                client = conn.default_channel.client
                pipe = client.pipeline(transaction=False)
                for region in regions:
                    pipe.llen(f"probe.{region}")
                pipe.get(freshness.key(freshness.INGEST))
                pipe.get(freshness.key(freshness.DISPATCH))
                pipe.hgetall(tallies.KEY)
                *depths, ingested, ticked, counts = pipe.execute()
        except Exception:
            yield GaugeMetricFamily("loopr_broker_up", "1 if the broker answered this scrape.", value=0)
            return
        yield GaugeMetricFamily("loopr_broker_up", "1 if the broker answered this scrape.", value=1)
        queue = GaugeMetricFamily("loopr_probe_queue_depth", "Checks waiting in a region's probe queue.",
                                  labels=["region"])
        for region, depth in zip(regions, depths):
            queue.add_metric([region], depth)
        yield queue
        now = time.time()
        lag = GaugeMetricFamily("loopr_ingest_lag_seconds", "Seconds since results were last ingested.")
        tick = GaugeMetricFamily("loopr_dispatch_last_tick_timestamp_seconds", "When the dispatcher last ticked.")
        ingested_at, ticked_at = freshness.parse(ingested), freshness.parse(ticked)
        if ingested_at is not None:
            lag.add_metric([], max(0.0, now - ingested_at))
        if ticked_at is not None:
            tick.add_metric([], ticked_at)
        yield lag
        yield tick
        missed = CounterMetricFamily("loopr_missed_slots", "Due slots no check ran for, by reason.",
                                     labels=["reason"])
        for name, n in tallies.parse(counts).items():
            if name.startswith("missed."):
                missed.add_metric([name.removeprefix("missed.")], n)
        yield missed

    def _nodes(self) -> Metric:
        nodes = GaugeMetricFamily("loopr_nodes", "Probe nodes per region and state (a serving node whose "
                                  "heartbeats stopped counts as offline).", labels=["region", "state"])
        cutoff = live_cutoff()
        counted: dict[tuple[str, str], int] = {}
        rows = (WorkerNode.objects.values_list("region__name", "state", "last_heartbeat_at")
                .order_by())
        for region, state, beat in rows:
            if state in SERVING_STATES and beat < cutoff:
                state = NodeState.OFFLINE
            counted[(region, state)] = counted.get((region, state), 0) + 1
        for (region, state), n in sorted(counted.items()):
            nodes.add_metric([region, state], n)
        return nodes

    def _notifications(self) -> Metric:
        family = GaugeMetricFamily("loopr_notifications", "Notifications pending or failed.", labels=["state"])
        counts = dict(Notification.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED])
                      .values_list("status").annotate(n=Count("pk")).order_by())
        for state in (DeliveryStatus.PENDING, DeliveryStatus.FAILED):
            family.add_metric([state], counts.get(state, 0))
        return family
