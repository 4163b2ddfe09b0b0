"""Real beat, central worker and probe worker processes on the configured
database and broker (PostgreSQL and Redis in CI)."""

from __future__ import annotations

from datetime import datetime

import pytest
import requests
from django.utils import timezone

from monitors.models import CheckResult, Monitor
from workers import reports
from workers.models import NodeToken
from teams.models import ApiToken
from tests.factories import MonitorFactory, RegionFactory, UserFactory
from tests.support.processes import wait_for

pytestmark = pytest.mark.e2e


def test_a_monitor_created_through_the_api_is_checked_on_schedule_and_follows_the_target(
    processes, live_server, target
):
    user = UserFactory(username="ops")
    headers = {"Authorization": f"Token {ApiToken.objects.issue(user, 'e2e')[1]}"}
    processes.central()
    processes.probe("probe1")
    processes.beat()
    # The probe node's heartbeat makes its region live before monitors exist.
    wait_for(lambda: requests.get(f"{live_server.url}/api/v1/regions/", headers=headers).json(),
             timeout=60, message="region 'local' to report a live probe worker")

    created = requests.post(
        f"{live_server.url}/api/v1/monitors/",
        json={"name": "web", "url": target.url("/health"), "interval": 1, "timeout": 0.8, "retries": 1},
        headers=headers, timeout=10,
    )
    assert created.status_code == 201, created.text
    monitor_url = f"{live_server.url}/api/v1/monitors/{created.json()['id']}/"

    def results(n: int = 100) -> list[dict]:
        return requests.get(monitor_url + f"results/?page_size={n}", headers=headers, timeout=10).json()["results"]

    # Results arrive at the monitor's interval, from the probe node, and it is up.
    wait_for(lambda: len(results()) >= 4, timeout=30, message="four results")
    latest = results()
    assert all(r["ok"] and r["region"] == "local" and r["node"].startswith("probe1@") for r in latest)
    slots = sorted(datetime.fromisoformat(r["scheduled_at"]) for r in latest)
    gaps = [(b - a).total_seconds() for a, b in zip(slots, slots[1:])]
    # On the monitor's own 1 s grid (no drift); a tick late under load skips a
    # slot rather than bursting to catch up, so a gap may be 2 s, never 1.3 s.
    assert all(gap >= 1 and gap == int(gap) for gap in gaps), gaps
    assert gaps.count(1.0) >= len(gaps) / 2, gaps
    assert requests.get(monitor_url, headers=headers).json()["status"] == "up"

    # The target fails: one failure is a suspicion, the retry confirms it.
    target.behave(status=503)
    wait_for(lambda: requests.get(monitor_url, headers=headers).json()["status"] == "down",
             timeout=30, message="status down")
    failed = [r for r in results(20) if not r["ok"]]
    assert failed and failed[0]["error_kind"] == "status" and failed[0]["status_code"] == 503

    # It recovers.
    target.behave(status=200)
    wait_for(lambda: requests.get(monitor_url, headers=headers).json()["status"] == "up",
             timeout=30, message="status up again")

    # Exactly one result per (slot, region): nothing was stored twice.
    rows = list(CheckResult.objects.filter(monitor_id=created.json()["id"]).values_list("scheduled_at", flat=True))
    assert len(rows) == len(set(rows))


def test_a_batch_whose_probe_node_is_killed_mid_way_is_finished_by_another_node_with_one_result_per_check(
    processes, target
):
    RegionFactory(name="local")
    owner = UserFactory(username="ops")
    target.behave("/slow", delay=4.0)
    now = timezone.now()
    fast = [MonitorFactory(owner=owner, url=target.url("/fast"), interval=3600, timeout=10, next_check_at=now)
            for _ in range(10)]
    slow = [MonitorFactory(owner=owner, url=target.url("/slow"), interval=3600, timeout=10, next_check_at=now)
            for _ in range(10)]
    env = {"LOOPR_BROKER_VISIBILITY_TIMEOUT": "6", "LOOPR_BATCH_SIZE": "100"}
    processes.central(**env)
    processes.probe("doomed", **env)
    wait_for(lambda: RegionFactory(name="local").is_live, timeout=60, message="a live region")
    processes.beat(**env)

    # The doomed node has reported the fast checks and is stuck in the slow ones.
    wait_for(lambda: target.hit_count("/slow") == 10, timeout=30, message="the slow checks to start")
    wait_for(lambda: CheckResult.objects.filter(monitor__in=fast).count() == 10, timeout=30,
             message="the fast results")
    processes.kill("doomed")
    assert CheckResult.objects.filter(monitor__in=slow).count() == 0

    # Its unacknowledged batch goes back to the queue and the survivor runs it.
    processes.probe("survivor", **env)
    # (Results, not missed records: while no node of the region was live, the
    # re-dispatch may have recorded the slow checks missed, which their
    # results then replace.)
    wait_for(lambda: CheckResult.objects.exclude(error_kind="missed").count() == 20, timeout=60,
             message="all 20 results")
    processes.stop_all()

    for monitor in fast + slow:
        assert CheckResult.objects.filter(monitor=monitor).count() == 1, monitor
    assert all(n.startswith("survivor@") for n in CheckResult.objects.filter(monitor__in=slow).values_list("node__name", flat=True))
    assert all(n.startswith("doomed@") for n in CheckResult.objects.filter(monitor__in=fast).values_list("node__name", flat=True))
    # Every check was re-run by the survivor; the fast ones were absorbed as duplicates.
    assert target.hit_count("/fast") == 20
    assert Monitor.objects.filter(status="up").count() == 20


def test_malformed_messages_on_the_queues_are_logged_and_dropped_and_the_workers_keep_working(processes, target):
    from kombu import Exchange, Queue

    from loopr.celery import app

    RegionFactory(name="local")
    central = processes.central()
    probe = processes.probe("probe1")
    wait_for(lambda: RegionFactory(name="local").is_live, timeout=60, message="a live region")

    with app.connection_for_write() as conn:
        producer = conn.Producer()
        for queue in ("probe.local", "ingest"):
            exchange = Exchange(queue, "direct")
            declare = [Queue(queue, exchange, routing_key=queue)]
            # Bodies that are not JSON, and a pickle (never accepted: it would run code).
            producer.publish("{not json", exchange=exchange, routing_key=queue, declare=declare,
                             content_type="application/json", content_encoding="utf-8", serializer=None)
            producer.publish(b"\x80\x04garbage", exchange=exchange, routing_key=queue, declare=declare,
                             content_type="application/x-python-serialize", content_encoding="binary",
                             serializer=None)
        app.send_task("nobody.knows.this.task", args=[1], queue="probe.local")
        app.send_task("workers.run_probe_batch", args=["not a list"], queue="probe.local")
        app.send_task("workers.run_probe_batch", args=[[{"monitor": "x"}, 42]], queue="probe.local")
        app.send_task("workers.run_probe_batch", kwargs={"unexpected": True}, queue="probe.local")
        token = NodeToken.issue("local")[1]
        app.send_task("monitors.ingest_results", args=[reports.sign("results", "local", "n", [{"monitor": -1}, "junk"],
                                                                    token)], queue="ingest")
        app.send_task("monitors.ingest_results", args=[None, None, None], queue="ingest")
        app.send_task("monitors.ingest_results", args=[reports.sign("results", "local", "n", [{"monitor": 1}],
                                                                    "lnt_forged")], queue="ingest")

    # A real check still goes all the way through afterwards.
    owner = UserFactory(username="ops")
    monitor = MonitorFactory(owner=owner, url=target.url("/"), interval=3600, timeout=2, next_check_at=timezone.now())
    processes.beat()
    wait_for(lambda: CheckResult.objects.filter(monitor=monitor).exists(), timeout=60, message="a real result")
    assert central.poll() is None and probe.poll() is None, "a worker died"
    logs = processes.log_text()
    assert "unknown task nobody.knows.this.task" in logs
    assert "malformed check dropped" in logs
    assert "argument checks of workers.run_probe_batch is a str, not a list" in logs  # dropped by the gate
    assert "ingest: rejected 2 results from local/n" in logs
    assert "arguments do not fit monitors.ingest_results" in logs  # dropped before Celery runs it
    assert "refused a report from n/local: unknown token" in logs  # a forged report never counts
