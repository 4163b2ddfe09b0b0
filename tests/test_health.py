from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from loopr import freshness, health
from loopr.celery import app
from monitors.missed import Missed, record_missed
from monitors.models import Monitor
from tests.factories import MonitorFactory, RegionFactory
from tests.support.processes import wait_for
from workers.models import NodeToken, Region
from workers import reports
from workers.tasks import ingest_results

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def running_system(monkeypatch) -> Iterator[None]:
    """A system that is past its start-up and whose dispatcher ticked just
    now; each test takes away what it is about."""
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.flushdb()
    monkeypatch.setattr(health, "STARTED_AT", time.time() - settings.LOOPR_HEALTH_STARTUP_GRACE - 1)
    monkeypatch.setattr(freshness, "_written_at", {})
    freshness.record(freshness.DISPATCH, time.time())
    freshness.record(freshness.CENTRAL, time.time())
    yield
    broker.flushdb()


def healthz(**params) -> tuple[int, dict]:
    response = Client().get("/healthz", params)
    return response.status_code, response.json()


def ticking() -> bool:
    status, body = healthz()
    return status == 200 and body["dispatcher"] == "ok"


def live_region_with_a_monitor(interval: int = 30) -> None:
    Region.objects.create(name="eu-west", last_seen_at=timezone.now())
    MonitorFactory(interval=interval)


class UnreachableDatabase:
    def cursor(self):
        raise OperationalError("connection refused")


@pytest.fixture
def point_broker_at() -> Iterator:
    """Point the Celery app at another broker URL for one test."""
    saved = app.conf.broker_url

    def point(url: str) -> None:
        app.conf.broker_url = url

    yield point
    app.conf.broker_url = saved


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connects hang, like a firewall dropping packets: its
    accept queue is full, so Linux drops further SYNs."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    yield port
    filler.close()
    listener.close()


def test_healthz_is_200_when_the_database_and_the_broker_answer():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", "dispatcher": "ok", "central": "ok",
                               "ingest": "idle", "queues": "ok"}


def test_healthz_needs_no_login():
    # Load balancers and orchestrators poll it without credentials.
    assert Client().get("/healthz").status_code != 401


def test_healthz_is_503_when_the_broker_is_unreachable(point_broker_at):
    point_broker_at("redis://127.0.0.1:1/0")
    started = time.monotonic()
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["database"] == "ok"
    assert body["broker"].startswith("error")
    # A refused connection is an answer at once, no retry schedule to sit through.
    assert time.monotonic() - started < 1


def test_healthz_gives_up_on_a_broker_that_never_answers(point_broker_at, silent_port, monkeypatch):
    monkeypatch.setattr(health, "BROKER_TIMEOUT", 0.5)
    point_broker_at(f"redis://127.0.0.1:{silent_port}/0")
    started = time.monotonic()
    response = Client().get("/healthz")
    assert response.status_code == 503
    # It waits BROKER_TIMEOUT, not the minutes a dropped SYN takes to fail.
    assert time.monotonic() - started < 2


def test_healthz_is_503_when_the_database_is_unreachable(monkeypatch):
    monkeypatch.setattr(health, "connection", UnreachableDatabase())
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "error: OperationalError"
    assert response.json()["broker"] == "ok"


def test_a_fresh_start_is_healthy_before_its_first_tick_and_says_it_is_starting(monkeypatch):
    monkeypatch.setattr(health, "STARTED_AT", time.time())
    redis.Redis.from_url(settings.REDIS_URL).delete(freshness.key(freshness.DISPATCH), freshness.key(freshness.CENTRAL))
    assert healthz() == (200, {"status": "ok", "database": "ok", "broker": "ok", "dispatcher": "starting",
                               "central": "starting", "ingest": "starting", "queues": "ok"})


def test_a_tick_from_before_the_start_does_not_fail_a_fresh_start_either(monkeypatch):
    # The broker keeps its data across restarts: last week's tick is no verdict on this start.
    monkeypatch.setattr(health, "STARTED_AT", time.time())
    freshness.record(freshness.DISPATCH, time.time() - 7 * 86400)
    assert healthz()[1]["dispatcher"] == "starting"


def test_a_dispatcher_that_never_ticked_is_503_once_the_start_up_grace_is_over():
    redis.Redis.from_url(settings.REDIS_URL).delete(freshness.key(freshness.DISPATCH))
    status, body = healthz()
    assert status == 503 and body["status"] == "unavailable"
    assert body["dispatcher"].startswith("stale: no dispatch tick yet")


def test_a_dispatch_tick_older_than_the_limit_is_503_naming_the_dispatcher():
    freshness.record(freshness.DISPATCH, time.time() - settings.LOOPR_HEALTH_DISPATCH_STALE - 5)
    status, body = healthz()
    assert status == 503
    assert re.match(r"stale: last dispatch tick 1[5-7] s ago", body["dispatcher"])
    # Everything else still answers: only the dispatcher is named.
    assert (body["database"], body["broker"], body["queues"]) == ("ok", "ok", "ok")


def test_a_central_worker_whose_sweep_stopped_is_503_naming_it_even_with_no_results_owed():
    # Nothing is due, so ingest is idle; the worker's own loop says it is gone.
    freshness.record(freshness.CENTRAL, time.time() - settings.LOOPR_HEALTH_CENTRAL_STALE - 5)
    status, body = healthz()
    assert status == 503
    # Seconds pass between the record and the request on a busy machine.
    assert re.match(r"stale: the central worker's notification sweep \(last 2[0-2] s ago", body["central"])
    assert (body["dispatcher"], body["ingest"], body["queues"]) == ("ok", "idle", "ok")


def test_the_notification_sweep_marks_the_central_worker_fresh():
    from notifications.tasks import sweep_notifications

    redis.Redis.from_url(settings.REDIS_URL).delete(freshness.key(freshness.CENTRAL))
    assert healthz()[0] == 503
    sweep_notifications()
    status, body = healthz()
    assert (status, body["central"]) == (200, "ok")


def test_no_results_while_a_live_region_has_monitors_due_is_503_naming_ingest():
    live_region_with_a_monitor()
    freshness.record(freshness.INGEST, time.time() - settings.LOOPR_HEALTH_INGEST_STALE - 1)
    status, body = healthz()
    assert status == 503
    assert re.match(r"stale: no results ingested \(last 12[1-3] s ago", body["ingest"])
    assert body["dispatcher"] == "ok"


def test_no_results_is_idle_when_nothing_is_expected_of_ingest():
    freshness.record(freshness.INGEST, time.time() - 3600)
    # No live region: nobody can send results.
    MonitorFactory(interval=30)
    assert healthz()[1]["ingest"] == "idle"
    # A live region, but its only monitor is checked hourly: an hour's silence is normal.
    Region.objects.create(name="eu-west", last_seen_at=timezone.now())
    Monitor.objects.update(interval=3600)
    assert healthz()[1]["ingest"] == "idle"
    # A paused monitor expects nothing either.
    Monitor.objects.update(interval=30, paused=True)
    assert healthz()[1]["ingest"] == "idle"
    # Monitors pinned to a region that is not live are unserved, not owed.
    far = Region.objects.create(name="ap-south")
    Monitor.objects.update(paused=False)
    Monitor.objects.get().regions.set([far])
    assert healthz()[1]["ingest"] == "idle"
    # A heartbeat is pinged by its job: it owes ingest nothing.
    Monitor.objects.get().regions.clear()
    Monitor.objects.update(kind="heartbeat", url="")
    assert healthz()[1]["ingest"] == "idle"


def test_an_accepted_report_marks_ingest_fresh_and_a_rejected_one_does_not():
    live_region_with_a_monitor()
    _, token = NodeToken.issue("eu-west")
    ingest_results(reports.sign("results", "eu-west", "rogue@h", [], "lnt_wrong"))
    assert healthz()[0] == 503
    ingest_results(reports.sign("results", "eu-west", "n1@h", [], token))
    assert healthz()[1]["ingest"] == "ok"


def test_a_backlog_on_a_central_queue_is_503_naming_the_queue():
    limit = settings.LOOPR_HEALTH_MAX_BACKLOG
    # Notifications nobody delivers: no worker consumes `notify` here.
    with app.producer_or_acquire() as producer:
        for i in range(limit + 1):
            app.send_task("notifications.deliver_notification", args=[i], producer=producer)
    status, body = healthz()
    assert status == 503
    assert body["queues"] == f"backlog: notify {limit + 1} messages waiting, limit {limit}"
    assert body["dispatcher"] == "ok"


def test_verbose_shows_each_component_with_its_age_or_backlog():
    status, body = healthz(verbose="1")
    assert status == 200
    details = body["details"]
    assert details["database"] == {"state": "ok"} and details["broker"] == {"state": "ok"}
    assert details["dispatcher"]["state"] == "ok" and 0 <= details["dispatcher"]["age"] < 5
    assert details["dispatcher"]["limit"] == settings.LOOPR_HEALTH_DISPATCH_STALE
    assert details["ingest"] == {"state": "idle", "age": None, "limit": settings.LOOPR_HEALTH_INGEST_STALE}
    assert details["queues"] == {"state": "ok", "limit": settings.LOOPR_HEALTH_MAX_BACKLOG,
                                 "backlog": {"dispatch": 0, "central": 0, "ingest": 0, "notify": 0, "heartbeat": 0}}
    # Without it, the short body load balancers read.
    assert "details" not in healthz()[1]


def test_verbose_counts_the_missed_slots_by_reason_and_the_checks_still_owed():
    redis.Redis.from_url(settings.REDIS_URL).delete("loopr:tallies")
    monitor, region = MonitorFactory(interval=60), RegionFactory(name="local")
    slot = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    record_missed([Missed(monitor.pk, region.pk, slot, slot + timedelta(minutes=9), 60, "dispatcher_down"),
                   Missed(monitor.pk, region.pk, slot + timedelta(minutes=20), slot + timedelta(minutes=20), 60,
                          "node_died")])
    status, body = healthz(verbose="1")
    # Counted, and shown; never a reason for a 503: recorded is not lost.
    assert status == 200
    assert body["details"]["accounting"]["missed_slots"] == {"dispatcher_down": 10, "node_died": 1}
    assert body["details"]["accounting"]["checks_owed"] == 0


@pytest.mark.e2e
def test_healthz_follows_a_real_beat_and_central_worker_and_names_the_dispatcher_when_beat_dies(processes):
    redis.Redis.from_url(settings.REDIS_URL).delete(freshness.key(freshness.DISPATCH))
    processes.central()
    processes.beat()
    # Healthy from the real ticks, not the fixture's.
    wait_for(ticking, timeout=60, message="/healthz to be 200 with a ticking dispatcher")

    processes.kill("beat", signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: healthz()[0] == 503, timeout=settings.LOOPR_HEALTH_DISPATCH_STALE + 15,
             message="/healthz to notice that beat is gone")
    # Within the limit and a tick or two of slack, and for the dispatcher alone.
    assert time.monotonic() - killed < settings.LOOPR_HEALTH_DISPATCH_STALE + 15
    body = healthz()[1]
    assert body["dispatcher"].startswith("stale: last dispatch tick")
    assert (body["database"], body["broker"], body["queues"]) == ("ok", "ok", "ok")
