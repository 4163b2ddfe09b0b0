"""The central re-dispatch: a check whose result never came is sent again
once, then recorded as missed; when everything is on time it costs nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from monitors.models import CheckResult
from tests.factories import MonitorFactory, RegionFactory
from workers import dispatch, ledger, redispatch
from workers.models import NodeToken, Region
from workers.tasks import ingest_results

pytestmark = pytest.mark.django_db


@pytest.fixture
def owed():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(ledger.OWED, ledger.RESENT, "ingest", "probe.local")
    yield ledger.Ledger(client)
    client.delete(ledger.OWED, ledger.RESENT, "ingest", "probe.local")


class Queues:
    """Stands in for the broker's queues: what was sent where."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[dict]]] = []

    def send(self, queue: str, batch: list[dict], expires: float) -> None:
        self.sent.append((queue, batch))

    @property
    def checks(self) -> list[dict]:
        return [c for _, batch in self.sent for c in batch]


def result_for(check: dict, ok: bool = True) -> dict:
    return {"monitor": check["monitor"], "slot": check["slot"], "started_at": check["slot"], "ok": ok,
            "latency_ms": 3.0, "status_code": 200, "error_kind": "ok", "error": "", "tls_expires_at": None}


def dispatch_one(owed, now, interval=30, timeout=5.0, late=1.0):
    RegionFactory(name="local", last_seen_at=now)
    monitor = MonitorFactory(interval=interval, timeout=timeout, next_check_at=now - timedelta(seconds=late))
    queues = Queues()
    dispatch.dispatch_due(queues.send, now=now, ledger=owed)
    [check] = queues.checks
    return monitor, check


def test_checks_answered_on_time_leave_nothing_owed_and_the_sweep_costs_no_query(owed, django_assert_num_queries):
    now = timezone.now()
    monitor, check = dispatch_one(owed, now)
    assert owed.size() == (1, 0)
    _, token = NodeToken.issue("local")
    ingest_results("local", "n@h", [result_for(check)], token=token)
    assert owed.size() == (0, 0)
    # Long after every deadline: one look at Redis, nothing to do, no SQL.
    with django_assert_num_queries(0):
        assert redispatch.sweep(owed, Queues().send, now=now + timedelta(minutes=10)) == {}


def test_a_lost_check_is_sent_again_once_at_its_deadline_then_recorded_as_expired(owed):
    now = timezone.now().replace(microsecond=0)
    monitor, check = dispatch_one(owed, now)  # ... and the batch vanishes
    queues = Queues()
    # Before its deadline (slot + timeout + grace + margin): nothing.
    assert redispatch.sweep(owed, queues.send, now=now + timedelta(seconds=5)) == {}
    outcome = redispatch.sweep(owed, queues.send, now=now + timedelta(seconds=20))
    assert outcome["resent"] == 1
    # The same slot, to the same region, at once (its slot is past: the probe runs it late).
    assert queues.sent == [("probe.local", [check])]
    assert owed.size() == (0, 1)
    # Sent once only: still nothing by the next deadline, and it is recorded as missed.
    outcome = redispatch.sweep(owed, queues.send, now=now + timedelta(seconds=60))
    assert outcome["missed"] == 1 and len(queues.sent) == 1
    row = CheckResult.objects.get(monitor=monitor)
    assert (row.error_kind, row.missed_reason, row.ok, row.scheduled_at.isoformat()) == (
        "missed", "expired", None, check["slot"])
    assert owed.size() == (0, 0)


def test_a_check_owed_by_a_region_whose_nodes_went_silent_is_recorded_as_node_died(owed):
    now = timezone.now().replace(microsecond=0)
    monitor, check = dispatch_one(owed, now)
    # The region's nodes fall silent: no heartbeat for three intervals.
    Region.objects.filter(name="local").update(last_seen_at=now - timedelta(hours=1))
    queues = Queues()
    redispatch.sweep(owed, queues.send, now=now + timedelta(seconds=30))
    assert queues.sent == []
    assert CheckResult.objects.get(monitor=monitor).missed_reason == "node_died"


def test_a_result_that_arrives_after_its_slot_was_recorded_missed_replaces_the_record(owed):
    now = timezone.now().replace(microsecond=0)
    monitor, check = dispatch_one(owed, now)
    Region.objects.filter(name="local").update(last_seen_at=now - timedelta(hours=1))
    redispatch.sweep(owed, Queues().send, now=now + timedelta(seconds=30))
    assert CheckResult.objects.get(monitor=monitor).error_kind == "missed"
    _, token = NodeToken.issue("local")
    ingest_results("local", "n@h", [result_for(check, ok=True)], token=token)
    row = CheckResult.objects.get(monitor=monitor)
    assert (row.ok, row.error_kind, row.missed_reason) == (True, "ok", "")


def test_nothing_is_decided_while_ingest_has_a_backlog_the_result_may_be_in(owed):
    now = timezone.now().replace(microsecond=0)
    monitor, check = dispatch_one(owed, now)
    owed.client.rpush("ingest", *[b"x"] * (redispatch.INGEST_BACKLOG + 1))
    outcome = redispatch.sweep(owed, Queues().send, now=now + timedelta(minutes=2))
    assert outcome == {"postponed": 1}
    assert not CheckResult.objects.filter(monitor=monitor).exists() and owed.size() == (1, 0)


def test_a_paused_monitor_owes_nothing(owed):
    now = timezone.now().replace(microsecond=0)
    monitor, check = dispatch_one(owed, now)
    monitor.pause()
    monitor.save()
    queues = Queues()
    redispatch.sweep(owed, queues.send, now=now + timedelta(minutes=2))
    assert queues.sent == [] and owed.size() == (0, 0) and not CheckResult.objects.exists()


def test_a_batch_expires_after_the_broker_s_visibility_timeout_whatever_the_interval(settings):
    # A batch given back after a node died must still be run, not discarded.
    for interval in (1, 30, 3600):
        batch = [{"interval": interval}]
        assert dispatch.batch_expires(batch) >= settings.LOOPR_BROKER_VISIBILITY_TIMEOUT + 60


def test_a_check_sent_late_is_owed_from_when_it_was_sent_not_from_its_slot(owed):
    # The dispatcher was away: the slot is a minute old when it goes out.
    now = timezone.now()
    monitor, check = dispatch_one(owed, now, interval=3600, late=60)
    [(member, deadline)] = owed.client.zrange(ledger.OWED, 0, -1, withscores=True)
    assert deadline >= now.timestamp() + 5 + settings.LOOPR_VERDICT_GRACE
    # So the same tick's sweep does not send it straight away again.
    queues = Queues()
    assert redispatch.sweep(owed, queues.send, now=now) == {} and queues.sent == []


def test_a_check_sent_again_carries_its_slot_to_the_microsecond(owed):
    now = timezone.now().replace(microsecond=123457)
    monitor, check = dispatch_one(owed, now)
    queues = Queues()
    redispatch.sweep(owed, queues.send, now=now + timedelta(seconds=30))
    # The very slot first sent: its result is the same row, not a neighbour.
    assert queues.checks[0]["slot"] == check["slot"]
