"""Missed slots: one record saying why, a run of slots in one row, replaced
by a real result that turns up later, and never a verdict."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from monitors import ingest
from monitors.missed import Missed, record_missed
from monitors.models import CheckResult
from tests.factories import MonitorFactory, RegionFactory
from tests.monitors.test_ingest import result
from workers.models import WorkerNode

pytestmark = pytest.mark.django_db


def a_slot():
    return timezone.now().replace(microsecond=0) - timedelta(minutes=10)


def test_a_run_of_missed_slots_is_one_row_and_a_run_that_continues_it_extends_it():
    monitor, region = MonitorFactory(interval=30), RegionFactory(name="local")
    first = a_slot()
    # A day of downtime for one monitor and region: one row, not 2,880.
    assert record_missed([Missed(monitor.pk, region.pk, first, first + timedelta(days=1), 30, "dispatcher_down")]) == 2881
    following = first + timedelta(days=1, seconds=30)
    assert record_missed([Missed(monitor.pk, region.pk, following, following, 30, "dispatcher_down")]) == 1
    row = CheckResult.objects.get()
    assert (row.scheduled_at, row.missed_until) == (first, following)
    assert (row.ok, row.error_kind, row.missed_reason, row.node_id) == (None, "missed", "dispatcher_down", None)


def test_a_run_for_another_reason_or_with_a_gap_is_a_row_of_its_own():
    monitor, region = MonitorFactory(interval=30), RegionFactory(name="local")
    first = a_slot()
    record_missed([Missed(monitor.pk, region.pk, first, first, 30, "no_region")])
    record_missed([Missed(monitor.pk, region.pk, first + timedelta(seconds=30), first + timedelta(seconds=30), 30,
                          "overload")])
    record_missed([Missed(monitor.pk, region.pk, first + timedelta(seconds=120), first + timedelta(seconds=120),
                          30, "overload")])
    assert CheckResult.objects.count() == 3


def test_recording_a_slot_missed_never_replaces_its_result():
    monitor = MonitorFactory(retries=0)
    slot = a_slot()
    ingest.ingest_results("local", "a@h", [result(monitor, slot)])
    region = RegionFactory(name="local")
    assert record_missed([Missed(monitor.pk, region.pk, slot, slot, 60, "expired")]) == 1
    row = CheckResult.objects.get()
    assert (row.ok, row.error_kind, row.missed_reason) == (True, "ok", "")


def test_a_result_arriving_after_its_slot_was_recorded_missed_replaces_the_record_and_is_judged():
    monitor, region = MonitorFactory(retries=0), RegionFactory(name="local")
    slot = a_slot()
    record_missed([Missed(monitor.pk, region.pk, slot, slot, 60, "node_died")])
    missed_id = CheckResult.objects.get().id
    node = WorkerNode.objects.create(name="a@h", region=region, last_heartbeat_at=slot)
    outcome = ingest.ingest_results("local", "a@h", [result(monitor, slot, ok=False)], node_id=node.pk)
    assert outcome.stored == 1 and outcome.duplicates == 0
    row = CheckResult.objects.get()
    assert (row.ok, row.error_kind, row.missed_reason, row.missed_until, row.node_id) == (
        False, "status", "", None, node.pk)
    if connection.vendor == "postgresql":
        # A new id, so that rolling up (which finds late results by id) counts it.
        assert row.id > missed_id
    monitor.refresh_from_db()
    assert monitor.status == "down"
    # And the same result once more is a duplicate, as ever.
    assert ingest.ingest_results("local", "a@h", [result(monitor, slot, ok=False)]).duplicates == 1


def test_missed_slots_are_no_data_for_the_state_machine():
    monitor, region = MonitorFactory(retries=0), RegionFactory(name="local")
    start = a_slot()
    ingest.ingest_results("local", "a@h", [result(monitor, start)])
    record_missed([Missed(monitor.pk, region.pk, start + timedelta(minutes=1), start + timedelta(minutes=5), 60,
                          "dispatcher_down")])
    monitor.refresh_from_db()
    # Still up, with no failure counted and no incident: a gap is not downtime.
    assert (monitor.status, monitor.consecutive_failures, monitor.current_incident_id) == ("up", 0, None)
    assert monitor.status_changes.count() == 1  # pending -> up


def test_the_results_api_lists_a_missed_slot_with_its_reason(api, user):
    monitor, region = MonitorFactory(owner=user), RegionFactory(name="local")
    slot = a_slot()
    record_missed([Missed(monitor.pk, region.pk, slot, slot + timedelta(minutes=2), 60, "no_region")])
    entry = api.get(f"/api/v1/monitors/{monitor.pk}/results/").json()["results"][0]
    assert (entry["ok"], entry["error_kind"], entry["missed_reason"]) == (None, "missed", "no_region")
    assert entry["missed_until"] is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite stores NUL in text")
def test_a_row_the_database_refuses_is_dropped_alone_and_the_good_rows_of_its_message_are_stored():
    monitor = MonitorFactory(retries=0)
    slot = a_slot()
    good = [ingest.parse_result(result(monitor, slot + timedelta(minutes=k))) for k in range(3)]
    # What validation may let through and the database refuses (PostgreSQL
    # text cannot hold NUL): built directly, past parse_result.
    poison = {**ingest.parse_result(result(monitor, slot + timedelta(minutes=5), ok=False)), "error": "a\x00b"}
    outcome = ingest.store([good[0], poison, *good[1:]], "local", "a@h", None)
    assert (outcome.stored, outcome.rejected) == (3, 1)
    assert CheckResult.objects.count() == 3
    monitor.refresh_from_db()
    assert monitor.status == "up"


def test_two_results_of_one_slot_in_one_message_store_one():
    monitor = MonitorFactory()
    slot = a_slot()
    outcome = ingest.ingest_results("local", "a@h", [result(monitor, slot), result(monitor, slot)])
    assert (outcome.stored, outcome.duplicates) == (1, 1)
