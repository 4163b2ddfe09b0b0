"""`/metrics`: the caller's monitors for Prometheus, read from current state
by a custom collector at scrape time (never per-process gauges, which would
differ between web workers), in prometheus_client's text exposition.

Authenticated by an API token, as `Authorization: Bearer <key>` (what
Prometheus' `authorization` scrape option sends) or `Token <key>`; anonymous
is a 401. Names follow Prometheus' naming guide (base units, `_total` for
counters) and blackbox_exporter's habits (`up`-style 1/0, expiry as a Unix
timestamp). Staff also get the system's own health: probe queues, nodes,
ingest lag, notifications, the dispatch tick.

Cost: a fixed number of queries and one broker round trip, whatever the
number of monitors; uptime ratios come from rollups (one GROUP BY).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from rest_framework import exceptions
from rest_framework.settings import api_settings

from loopr import freshness, tallies
from monitors import rollups
from monitors.choices import MonitorStatus
from monitors.models import Monitor
from monitors.regions import Region, live_cutoff
from notifications.choices import DeliveryStatus
from notifications.models import Notification
from workers.choices import SERVING_STATES, NodeState
from workers.models import WorkerNode

UPTIME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
STATUSES = [status.value for status in MonitorStatus]


def metrics(request: HttpRequest) -> HttpResponse:
    user = authenticated_user(request)
    if user is None:
        response = HttpResponse("Authentication required: Authorization: Bearer <API token>.\n", status=401,
                                content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="loopr"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(user))
    if user.is_staff:
        registry.register(SystemCollector())
    response = HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


def authenticated_user(request: HttpRequest):
    """The user of the request's API token, by the API's own token
    authentication (whatever class the settings name), under either keyword."""
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() not in ("bearer", "token") or not key or " " in key:
        return None
    for authentication in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
        if not hasattr(authentication, "authenticate_credentials") or not hasattr(authentication, "keyword"):
            continue
        try:
            user, _ = authentication().authenticate_credentials(key)
        except exceptions.AuthenticationFailed:
            continue
        return user
    return None


class MonitorCollector:
    def __init__(self, user):
        self.user = user

    def collect(self) -> Iterator[Metric]:
        labels = ["monitor", "name"]
        up = GaugeMetricFamily("loopr_monitor_up", "1 if the monitor is up (or degraded), 0 otherwise.", labels=labels)
        status = GaugeMetricFamily("loopr_monitor_status", "The monitor's status, one-hot.",
                                   labels=[*labels, "status"])
        latency = GaugeMetricFamily("loopr_monitor_latency_seconds", "The latest check's latency, per region.",
                                    labels=[*labels, "region"])
        uptime = GaugeMetricFamily("loopr_monitor_uptime_ratio", "Uptime over the window (from rollups: up to the "
                                   "last rolled-up hour).", labels=[*labels, "window"])
        expiry = GaugeMetricFamily("loopr_monitor_tls_cert_expiry_timestamp_seconds",
                                   "When the latest TLS certificate seen expires (Unix time).", labels=labels)
        checks = CounterMetricFamily("loopr_monitor_checks", "Checks stored, by outcome.",
                                     labels=[*labels, "result"])
        monitors = Monitor.objects.owned_by(self.user)
        ratios = rollups.rolled_up_uptime(monitors, UPTIME_WINDOWS)
        counts = _check_counts()
        rows = monitors.order_by("pk").values_list("pk", "name", "status", "region_results", "tls_alerted_expiry")
        for pk, name, current, regions, expires in rows.iterator(chunk_size=2000):
            ident = [str(pk), name]
            up.add_metric(ident, 1.0 if current in (MonitorStatus.UP, MonitorStatus.DEGRADED) else 0.0)
            for value in STATUSES:
                status.add_metric([*ident, value], 1.0 if value == current else 0.0)
            for region, report in sorted((regions or {}).items()):
                seconds = _latency_seconds(report)
                if seconds is not None:
                    latency.add_metric([*ident, region], seconds)
            for window, ratio in ratios.get(pk, {}).items():
                uptime.add_metric([*ident, window], ratio)
            if expires is not None:
                expiry.add_metric(ident, expires.timestamp())
            checks.add_metric([*ident, "ok"], counts.get(f"{pk}:ok", 0))
            checks.add_metric([*ident, "failed"], counts.get(f"{pk}:failed", 0))
        yield from (up, status, latency, uptime, expiry, checks)


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
