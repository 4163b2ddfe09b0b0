from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitors import ingest
from monitors.models import CheckResult
from tests.factories import MonitorFactory, WorkerNodeFactory

pytestmark = pytest.mark.django_db


def result(monitor, slot, ok=True, **extra) -> dict:
    return {
        "monitor": monitor.pk, "slot": slot.isoformat(), "started_at": (slot + timedelta(seconds=0.01)).isoformat(),
        "ok": ok, "latency_ms": 12.5, "status_code": 200 if ok else 503,
        "error_kind": "ok" if ok else "status", "error": "" if ok else "HTTP 503, expected 200-399",
        "tls_expires_at": None, **extra,
    }


def test_it_stores_results_and_moves_the_monitor_status():
    monitor = MonitorFactory(retries=0)
    slot = timezone.now().replace(microsecond=0)
    node = WorkerNodeFactory(name="probe1@host")
    outcome = ingest.ingest_results("local", "probe1@host", [result(monitor, slot)], node_id=node.pk)
    assert (outcome.stored, outcome.duplicates, outcome.rejected) == (1, 0, 0)
    monitor.refresh_from_db()
    assert monitor.status == "up" and monitor.last_checked_at is not None
    row = CheckResult.objects.get()
    assert (row.region.name, row.node.name, row.scheduled_at, row.latency_ms) == ("local", "probe1@host", slot, 12.5)


def test_the_same_result_delivered_twice_is_stored_once_and_counted_once():
    monitor = MonitorFactory(retries=1)
    slot = timezone.now()
    ingest.ingest_results("local", "a@h", [result(monitor, slot, ok=False)])
    outcome = ingest.ingest_results("local", "b@h", [result(monitor, slot, ok=False)])
    assert (outcome.stored, outcome.duplicates) == (0, 1)
    monitor.refresh_from_db()
    # A duplicate must not count as the retry that confirms the outage.
    assert monitor.consecutive_failures == 1 and monitor.status == "pending"
    assert CheckResult.objects.count() == 1


def test_the_same_slot_from_two_regions_is_two_results():
    monitor = MonitorFactory()
    slot = timezone.now()
    ingest.ingest_results("eu-west", "a@h", [result(monitor, slot)])
    ingest.ingest_results("us-east", "b@h", [result(monitor, slot)])
    assert sorted(CheckResult.objects.values_list("region__name", flat=True)) == ["eu-west", "us-east"]


@pytest.mark.parametrize(
    "bad",
    [
        "not a dict",
        {"monitor": "7", "ok": True},
        {"ok": True},
        {"monitor": 1, "ok": "yes"},
        {"monitor": 1, "ok": True, "slot": "yesterday", "started_at": "2026-01-01T00:00:00+00:00"},
        {"monitor": 1, "ok": True, "slot": "2026-01-01T00:00:00", "started_at": "2026-01-01T00:00:00+00:00"},
        {"monitor": 1, "ok": False, "slot": "2026-01-01T00:00:00+00:00",
         "started_at": "2026-01-01T00:00:00+00:00", "error_kind": "gremlins"},
        {"monitor": 1, "ok": True, "slot": "2026-01-01T00:00:00+00:00",
         "started_at": "2026-01-01T00:00:00+00:00", "status_code": 10_000},
    ],
)
def test_a_malformed_result_is_rejected_and_counted_while_the_good_ones_are_stored(bad):
    monitor = MonitorFactory()
    outcome = ingest.ingest_results("local", "a@h", [bad, result(monitor, timezone.now())])
    assert (outcome.stored, outcome.rejected) == (1, 1)


def test_a_message_with_an_invalid_region_or_shape_is_dropped_whole():
    monitor = MonitorFactory()
    assert ingest.ingest_results("../etc", "a@h", [result(monitor, timezone.now())]).rejected == 1
    assert ingest.ingest_results("local", "a@h", {"not": "a list"}).rejected == 1
    assert CheckResult.objects.count() == 0


def test_results_of_a_deleted_monitor_are_dropped_quietly():
    monitor = MonitorFactory()
    payload = [result(monitor, timezone.now())]
    monitor.delete()
    assert ingest.ingest_results("local", "a@h", payload).stored == 0


def test_several_slots_of_one_monitor_in_one_message_each_count_toward_the_retries():
    monitor = MonitorFactory(retries=1)
    now = timezone.now()
    ingest.ingest_results("local", "a@h", [result(monitor, now + timedelta(seconds=i), ok=i == 0)
                                           for i in range(3)])
    monitor.refresh_from_db()
    # up, then a failure and its confirming retry, all in one report
    assert monitor.status == "down" and monitor.consecutive_failures == 2
