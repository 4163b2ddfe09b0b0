"""Heartbeats reach the central worker ahead of any backlog of results."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from tests.support.processes import wait_for
from workers import reports
from workers.models import NodeToken, WorkerNode
from workers.tasks import ingest_results, record_heartbeat

pytestmark = pytest.mark.e2e

FLOOD = 4000


def send_heartbeat(node: str, token: str) -> None:
    record_heartbeat.apply_async(args=[reports.sign("heartbeat", "far", node, {"version": "test"}, token)])


def test_a_heartbeat_is_recorded_promptly_while_thousands_of_results_wait_on_ingest(processes):
    from loopr.celery import app

    _, token = NodeToken.issue("far")
    processes.central()
    # The worker is up and consuming once a first heartbeat lands.
    # (Sent again until then: a heartbeat older than three intervals is stale.)
    wait_for(lambda: send_heartbeat("warm@h", token) or WorkerNode.objects.filter(name="warm@h").exists(),
             timeout=60, interval=1, message="the central worker")

    # Real result messages, each one costing the worker a token check and a
    # write (a wrong token: counted as a rejection), queued ahead of the heartbeat.
    with app.producer_or_acquire() as producer:
        for i in range(FLOOD):
            ingest_results.apply_async(args=[reports.sign("results", "far", f"flood-{i}@h", [], "lnt_wrong")],
                                       producer=producer)
    send_heartbeat("late@h", token)

    # It overtakes the backlog: recorded within seconds, and while most of the
    # results are still queued (behind them it would come after the last one).
    wait_for(lambda: WorkerNode.objects.filter(name="late@h").exists(), timeout=5, message="the late heartbeat")
    waiting = redis.Redis.from_url(settings.REDIS_URL).llen("ingest")
    assert waiting > FLOOD // 4
    assert WorkerNode.objects.get(name="late@h").region.is_live
