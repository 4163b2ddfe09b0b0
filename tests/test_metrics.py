"""/metrics: token authentication (Bearer or Token), the caller's monitors
under the names the issue gives, staff-only system metrics, and a scrape
that parses as Prometheus text."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from monitors import figures, ingest, rollups
from monitors.models import Monitor
from teams.models import ApiToken
from tests.factories import MonitorFactory, UserFactory, WorkerNodeFactory
from tests.monitors.test_ingest import result

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_counts_from_before():
    # Check totals live in the broker's Redis, which outlives the test database (ids come round again).
    import redis
    from django.conf import settings

    from loopr import tallies

    redis.Redis.from_url(settings.REDIS_URL).delete(tallies.CHECKS)


def scrape(user, scheme: str = "Bearer") -> dict:
    key = ApiToken.objects.cli_key(user)
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"{scheme} {key}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples: dict = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict, metric: str, **labels) -> float:
    found = [v for l, v in samples.get(metric, []) if all(l.get(k) == str(x) for k, x in labels.items())]
    assert len(found) == 1, (metric, labels, samples.get(metric))
    return found[0]


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Token nope", "Basic YTpi", "Bearer a b"])
def test_a_scrape_without_a_valid_token_is_a_401(header):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    response = Client().get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_each_monitor_of_the_caller_is_exported_under_the_issues_names(user, other_user):
    monitor = MonitorFactory(owner=user, name='api "prod"', retries=0)
    MonitorFactory(owner=other_user, name="theirs")
    hour = rollups.floor_to(timezone.now(), rollups.HOUR) - timedelta(hours=3)
    expires = timezone.now().replace(microsecond=0) + timedelta(days=20)
    ingest.ingest_results("eu", "e@h", [result(monitor, hour + timedelta(minutes=i), ok=not 10 <= i < 15,
                                               latency_ms=250.0, tls_expires_at=expires.isoformat())
                                        for i in range(120)])
    rollups.roll_up()
    samples = scrape(user, "Bearer")
    ident = {"monitor": monitor.pk, "name": 'api "prod"'}
    assert value(samples, "loopr_monitor_up", **ident) == 1
    assert value(samples, "loopr_monitor_status", **ident, status="up") == 1
    assert value(samples, "loopr_monitor_status", **ident, status="down") == 0
    assert value(samples, "loopr_monitor_latency_seconds", **ident, region="eu") == 0.25
    assert value(samples, "loopr_monitor_uptime_ratio", **ident, window="24h") == pytest.approx(115 / 120)
    assert value(samples, "loopr_monitor_uptime_ratio", **ident, window="30d") == pytest.approx(115 / 120)
    assert value(samples, "loopr_monitor_tls_cert_expiry_timestamp_seconds", **ident) == expires.timestamp()
    assert value(samples, "loopr_monitor_checks_total", **ident, result="ok") == 115
    assert value(samples, "loopr_monitor_checks_total", **ident, result="failed") == 5
    # Only the caller's monitors; no system metrics for a non-staff user.
    assert {l["name"] for l, _ in samples["loopr_monitor_up"]} == {'api "prod"'}
    assert not any(name.startswith(("loopr_nodes", "loopr_probe_queue")) for name in samples)
    # A redelivered message is not counted again; Token works as well as Bearer.
    ingest.ingest_results("eu", "e@h", [result(monitor, hour + timedelta(minutes=i)) for i in range(120)])
    again = scrape(user, "Token")
    assert value(again, "loopr_monitor_checks_total", **ident, result="ok") == 115
    Monitor.objects.filter(pk=monitor.pk).update(status="down")
    assert value(scrape(user), "loopr_monitor_up", **ident) == 0


def test_a_scrape_reads_the_uptime_ratios_the_worker_keeps(user):
    monitor = MonitorFactory(owner=user, retries=0)
    hour = rollups.floor_to(timezone.now(), rollups.HOUR) - timedelta(hours=3)
    ingest.ingest_results("eu", "e@h", [result(monitor, hour + timedelta(minutes=i), ok=i >= 6) for i in range(60)])
    # The roll-up task: roll up, then recompute the ratios for every monitor.
    rollups.roll_up()
    assert figures.refresh() >= 1
    with CaptureQueriesContext(connection) as queries:
        samples = scrape(user)
    assert value(samples, "loopr_monitor_uptime_ratio", monitor=monitor.pk, name=monitor.name,
                 window="7d") == pytest.approx(54 / 60)
    assert not [q["sql"] for q in queries if "monitors_rollup" in q["sql"]]
    # Until the next roll-up, the kept ratios stand.
    assert figures.refresh() == 0


def test_staff_also_get_the_systems_health(db):
    staff = UserFactory(username="ops", is_staff=True)
    WorkerNodeFactory(name="p1@eu", region__name="eu")
    WorkerNodeFactory(name="p2@eu", region__name="eu", last_heartbeat_at=timezone.now() - timedelta(hours=1))
    samples = scrape(staff)
    assert value(samples, "loopr_nodes", region="eu", state="online") == 1
    assert value(samples, "loopr_nodes", region="eu", state="offline") == 1
    assert value(samples, "loopr_probe_queue_depth", region="eu") == 0
    assert value(samples, "loopr_notifications", state="pending") == 0
    assert value(samples, "loopr_broker_up") == 1
