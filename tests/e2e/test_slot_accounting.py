"""Every due slot ends with exactly one result or one missed record, on real
processes with the default broker settings: a probe killed mid-batch, a
dispatcher killed and restarted, a central worker that is not there."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from loopr import freshness
from monitors.models import CheckResult, Monitor
from tests.factories import MonitorFactory, RegionFactory, UserFactory
from tests.support.processes import wait_for
from workers import ledger

pytestmark = pytest.mark.e2e


def broker() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def test_a_batch_lost_with_its_probe_is_run_again_within_seconds_with_the_default_visibility_timeout(
    processes, target
):
    RegionFactory(name="local")
    owner = UserFactory(username="ops")
    target.behave("/slow", delay=4.0)
    now = timezone.now()
    slow = [MonitorFactory(owner=owner, url=target.url("/slow"), interval=3600, timeout=10, next_check_at=now)
            for _ in range(10)]
    processes.central()
    processes.probe("doomed")
    wait_for(lambda: RegionFactory(name="local").is_live, timeout=60, message="a live region")
    processes.beat()
    wait_for(lambda: target.hit_count("/slow") == 10, timeout=30, message="the slow checks to start")
    processes.kill("doomed")
    killed_at = time.monotonic()
    processes.probe("survivor")

    # The broker would give the batch back only after 300 s (and used to
    # discard it then, expired); the re-dispatch sends it again at its
    # deadline (slot + timeout + grace + margin, ~20 s).
    wait_for(lambda: CheckResult.objects.filter(monitor__in=slow).count() == 10, timeout=90,
             message="the slow results")
    assert time.monotonic() - killed_at < 60
    for monitor in slow:
        [row] = CheckResult.objects.filter(monitor=monitor)
        assert row.ok is True and row.node.name.startswith("survivor@")
        # Run late, and the result shows by how much.
        assert (row.checked_at - row.scheduled_at).total_seconds() > 10


def covering(rows: list[CheckResult], slot) -> list[CheckResult]:
    return [r for r in rows if r.scheduled_at == slot
            or (r.error_kind == "missed" and r.missed_until and r.scheduled_at <= slot <= r.missed_until)]


def test_every_slot_of_a_dispatcher_outage_has_exactly_one_result_or_missed_record(processes, target):
    RegionFactory(name="local")
    owner = UserFactory(username="ops")
    start = timezone.now().replace(microsecond=0) + timedelta(seconds=3)
    monitors = [MonitorFactory(owner=owner, url=target.url("/"), interval=1, timeout=0.5, next_check_at=start)
                for _ in range(5)]
    env = {"LOOPR_DISPATCH_CATCH_UP": "3"}
    processes.central(**env)
    processes.probe("probe1", **env)
    wait_for(lambda: RegionFactory(name="local").is_live, timeout=60, message="a live region")
    processes.beat(**env)
    wait_for(lambda: CheckResult.objects.filter(monitor=monitors[0]).count() >= 3, timeout=60,
             message="results flowing")

    # The dispatcher dies for longer than the catch-up window (and the
    # health check's staleness limit), then comes back.
    processes.kill("central-dispatcher")
    time.sleep(settings.LOOPR_HEALTH_DISPATCH_STALE + 5)
    processes.dispatcher("central-dispatcher", **env)
    recovered = CheckResult.objects.filter(monitor=monitors[0]).count()
    wait_for(lambda: CheckResult.objects.filter(monitor=monitors[0]).count() >= recovered + 5, timeout=60,
             message="results flowing again")

    # Stop the clock and let everything owed come in or be decided.
    processes.kill("beat")
    wait_for(lambda: broker().zcard(ledger.OWED) + broker().zcard(ledger.RESENT) == 0, timeout=60,
             message="nothing owed")
    for monitor in monitors:
        monitor.refresh_from_db()
        rows = list(CheckResult.objects.filter(monitor=monitor))
        slot, last = start, monitor.next_check_at - timedelta(seconds=1)
        gaps, doubles = [], []
        while slot <= last:
            found = covering(rows, slot)
            (gaps if not found else doubles if len(found) > 1 else []).append(slot)
            slot += timedelta(seconds=1)
        assert gaps == [] and doubles == [], (monitor, gaps, doubles)
        missed = [r for r in rows if r.error_kind == "missed"]
        # The outage is one record (a run of slots), saying why (a first one
        # may precede the first tick, before beat started).
        assert {r.missed_reason for r in missed} == {"dispatcher_down"} and all(r.ok is None for r in missed)
        longest = max((r.missed_until - r.scheduled_at).total_seconds() for r in missed)
        assert longest >= settings.LOOPR_HEALTH_DISPATCH_STALE - 3
    # Missed slots are no data: every monitor is still up.
    assert set(Monitor.objects.values_list("status", flat=True)) == {"up"}


def test_the_dispatcher_ticks_on_while_the_central_worker_is_gone_and_results_pile_up(processes):
    from loopr.celery import app
    from workers import reports
    from workers.tasks import ingest_results

    # A region kept live by hand: no central worker records heartbeats here.
    RegionFactory(name="local", last_seen_at=timezone.now() + timedelta(hours=1))
    owner = UserFactory(username="ops")
    MonitorFactory.create_batch(3, owner=owner, interval=1, timeout=0.5, next_check_at=timezone.now())
    with app.producer_or_acquire() as producer:
        for i in range(2000):
            ingest_results.apply_async(args=[reports.sign("results", "local", f"flood-{i}@h", [], "lnt_wrong")],
                                       producer=producer)
    broker().delete(freshness.key(freshness.DISPATCH))
    processes.dispatcher()
    processes.beat()
    wait_for(lambda: broker().get(freshness.key(freshness.DISPATCH)) is not None, timeout=60,
             message="a first tick")
    # A tick every second while 2,000 messages wait on ingest with no one to take them.
    ages = []
    for _ in range(5):
        time.sleep(1)
        ages.append(time.time() - float(broker().get(freshness.key(freshness.DISPATCH))))
    assert max(ages) < 3, ages
    assert broker().llen("ingest") == 2000
    assert broker().llen("probe.local") > 0
