"""Real beat, central worker and probe worker against a target that is fast,
then slow, then failing, then fast again: the uptime API's figures agree with
the raw results of the same range, before and after they are rolled up."""

from __future__ import annotations

import math
import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from monitors import rollups
from monitors.models import CheckResult, Incident
from teams.models import ApiToken
from tests.factories import UserFactory
from tests.support.processes import wait_for

pytestmark = pytest.mark.e2e


def iso(at) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_the_uptime_api_agrees_with_the_raw_results_of_a_fast_slow_failing_target(processes, live_server, target):
    user = UserFactory(username="ops")
    headers = {"Authorization": f"Token {ApiToken.objects.issue(user, 'e2e')[1]}"}
    processes.central()
    processes.probe("probe1")
    processes.beat()
    wait_for(lambda: requests.get(f"{live_server.url}/api/v1/regions/", headers=headers).json(),
             timeout=60, message="a live region")
    created = requests.post(f"{live_server.url}/api/v1/monitors/", headers=headers, timeout=10, json={
        "name": "web", "url": target.url("/health"), "interval": 1, "timeout": 0.8, "retries": 1})
    assert created.status_code == 201, created.text
    monitor_id = created.json()["id"]
    wait_for(lambda: CheckResult.objects.filter(monitor_id=monitor_id).count() >= 3, timeout=30,
             message="first results")
    for behaviour in ({"delay": 0.25}, {"status": 503}, {}):
        time.sleep(6)
        target.behave(**behaviour)
    time.sleep(6)
    processes.stop_all()

    results = CheckResult.objects.filter(monitor_id=monitor_id)
    since = results.order_by("scheduled_at").first().scheduled_at
    until = results.order_by("-scheduled_at").first().scheduled_at + timedelta(seconds=1)
    url = f"{live_server.url}/api/v1/monitors/{monitor_id}/uptime/?since={iso(since)}&until={iso(until)}"

    def check(body: dict) -> None:
        assert body["checks"] == results.count()
        assert body["failed_checks"] == results.filter(ok=False).count() >= 4
        incident = Incident.objects.get(monitor_id=monitor_id)
        # The outage's slots, first failed check to recovery, on a 1 s grid.
        assert body["downtime_seconds"] == pytest.approx((incident.resolved_at - incident.started_at).total_seconds(),
                                                         abs=1.5)
        assert body["incidents"] == 1
        latencies = sorted(results.filter(ok=True).values_list("latency_ms", flat=True))
        assert body["latency_ms"]["max"] == pytest.approx(latencies[-1])
        for q, key in [(0.5, "p50"), (0.95, "p95")]:
            exact = latencies[math.ceil(q * len(latencies)) - 1]
            assert abs(body["latency_ms"][key] - exact) <= exact * rollups.MAX_PERCENTILE_ERROR + 1e-3, key
        # The slow phase shows, within the histogram's stated error.
        assert body["latency_ms"]["p95"] >= 250 * (1 - rollups.MAX_PERCENTILE_ERROR)
        covered = body["checks"]  # one region, 1 s slots, nothing in maintenance
        assert body["uptime_percent"] == math.floor(100_000 * (1 - body["downtime_seconds"] / covered)) / 1000

    raw = requests.get(url, headers=headers, timeout=10).json()
    check(raw)
    # Rolled up (as if the hour had closed), the same range gives the same figures.
    rollups.roll_up(now=until + timedelta(hours=2))
    assert rollups.rolled_up_to() > until
    rolled = requests.get(url, headers=headers, timeout=10).json()
    check(rolled)
    assert rolled == raw
    minutes = requests.get(f"{live_server.url}/api/v1/monitors/{monitor_id}/series/?resolution=minute&since="
                           f"{iso(since)}&until={iso(timezone.now())}", headers=headers, timeout=10).json()
    assert sum(b["checks"] for b in minutes["buckets"]) == raw["checks"]
    assert sum(b["downtime_seconds"] for b in minutes["buckets"]) == raw["downtime_seconds"]
