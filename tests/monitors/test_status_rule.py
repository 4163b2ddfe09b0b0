from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitors.models import Monitor

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def feed(monitor: Monitor, outcomes: str, start: int = 0) -> list[str]:
    statuses = []
    for i, outcome in enumerate(outcomes, start):
        slot = T0 + timedelta(minutes=i)
        monitor.record_result(outcome == "+", slot, slot + timedelta(seconds=1))
        statuses.append(monitor.status)
    return statuses


def test_a_new_monitor_is_pending_until_its_first_result():
    monitor = Monitor(retries=1)
    assert monitor.status == "pending"
    assert feed(monitor, "+") == ["up"]


def test_one_failure_is_only_a_suspicion_and_the_retry_confirms_it():
    monitor = Monitor(retries=1)
    # up, suspicion (still up), confirmed down
    assert feed(monitor, "+--") == ["up", "up", "down"]


def test_retries_zero_goes_down_on_the_first_failure():
    assert feed(Monitor(retries=0), "+-") == ["up", "down"]


def test_a_blip_between_successes_never_marks_it_down():
    assert feed(Monitor(retries=2), "+--+--+") == ["up"] * 7


def test_one_success_brings_a_down_monitor_back_up():
    assert feed(Monitor(retries=1), "--+") == ["pending", "down", "up"]


def test_a_result_older_than_the_newest_applied_slot_does_not_move_the_status():
    monitor = Monitor(retries=0)
    feed(monitor, "+", start=5)
    # A late failure from slot 2 (a redelivered batch) must not mark it down.
    assert feed(monitor, "-", start=2) == ["up"]
    assert monitor.last_checked_at == T0 + timedelta(minutes=5, seconds=1)


def test_a_paused_monitor_stores_results_but_keeps_its_paused_status():
    monitor = Monitor(retries=0)
    monitor.pause()
    assert feed(monitor, "--") == ["paused", "paused"]


@pytest.mark.django_db
def test_resuming_a_monitor_makes_it_pending_and_due_now(user):
    monitor = Monitor.objects.create(owner=user, name="x", url="http://127.0.0.1:9/", status="down",
                                     consecutive_failures=3)
    monitor.pause()
    monitor.resume()
    assert (monitor.status, monitor.consecutive_failures, monitor.paused) == ("pending", 0, False)
