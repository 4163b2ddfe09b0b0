"""The monitor's state machine: pure model methods, no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitors.models import Check, Monitor

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def feed(monitor: Monitor, outcomes: str, start: int = 0, latency: float = 10.0) -> list[str]:
    """'+' a success, '-' a failure, one a minute; returns the status after each."""
    statuses = []
    for i, outcome in enumerate(outcomes, start):
        slot = T0 + timedelta(minutes=i)
        monitor.apply_check(Check(ok=outcome == "+", slot=slot, checked_at=slot + timedelta(seconds=1),
                                  latency_ms=latency, error_kind="" if outcome == "+" else "status",
                                  error="" if outcome == "+" else "HTTP 503"))
        statuses.append(monitor.status)
    return statuses


def test_a_new_monitor_is_pending_until_its_first_result():
    monitor = Monitor(retries=1)
    assert monitor.status == "pending"
    assert feed(monitor, "+") == ["up"]


def test_one_failure_is_only_a_suspicion_and_the_retry_confirms_it():
    # up, suspicion (still up), confirmed down
    assert feed(Monitor(retries=1), "+--") == ["up", "up", "down"]


def test_retries_zero_goes_down_on_the_first_failure():
    assert feed(Monitor(retries=0), "+-") == ["up", "down"]


def test_a_blip_between_successes_never_marks_it_down():
    assert feed(Monitor(retries=2), "+--+--+") == ["up"] * 7


def test_recovery_needs_the_configured_number_of_successes_in_a_row():
    monitor = Monitor(retries=0, recovery_checks=3)
    assert feed(monitor, "+-++-+++") == ["up", "down", "down", "down", "down", "down", "down", "up"]


def test_the_outage_starts_at_the_first_failed_check_not_at_the_confirmation():
    monitor = Monitor(retries=2)
    feed(monitor, "+---")
    assert monitor.status == "down"
    assert monitor.failing_since == T0 + timedelta(minutes=1, seconds=1)
    assert (monitor.failure_kind, monitor.failure_message) == ("status", "HTTP 503")


def test_a_slow_but_correct_answer_is_degraded_and_a_fast_one_is_up_again():
    monitor = Monitor(retries=0, latency_threshold_ms=500)
    assert feed(monitor, "+", latency=100) == ["up"]
    assert feed(monitor, "+", start=1, latency=900) == ["degraded"]
    assert feed(monitor, "+", start=2, latency=100) == ["up"]


def test_a_result_older_than_the_newest_applied_slot_does_not_move_the_status():
    monitor = Monitor(retries=0)
    feed(monitor, "+", start=5)
    # A late failure from slot 2 (a redelivered batch) must not mark it down.
    assert feed(monitor, "-", start=2) == ["up"]
    assert monitor.last_checked_at == T0 + timedelta(minutes=5, seconds=1)


def test_a_paused_monitor_keeps_its_paused_status_and_its_health():
    monitor = Monitor(retries=0)
    feed(monitor, "+")
    monitor.pause()
    assert feed(monitor, "--", start=1) == ["paused", "paused"]
    assert monitor.health == "up"


def test_maintenance_shows_in_the_status_but_the_health_still_follows_the_checks():
    monitor = Monitor(retries=0)
    monitor.in_maintenance = True
    monitor.refresh_status()
    assert feed(monitor, "+-") == ["maintenance", "maintenance"]
    assert monitor.health == "down"


@pytest.mark.parametrize(
    "told, health, event, degraded_only",
    [
        ("up", "down", "down", False),
        ("pending", "down", "down", False),
        ("down", "up", "up", False),
        ("down", "degraded", "up", False),
        ("up", "degraded", "degraded", True),
        ("degraded", "up", "up", True),
    ],
)
def test_the_announcement_says_what_changed_since_people_were_last_told(told, health, event, degraded_only):
    monitor = Monitor(alerted_health=told, health=health)
    announcement = monitor.announcement()
    assert (announcement.event, announcement.degraded_only) == (event, degraded_only)
    assert monitor.alerted_health == health
    assert monitor.announcement() is None  # told once


def test_nothing_is_announced_for_a_first_up_or_while_paused_in_maintenance_or_flapping():
    assert Monitor(alerted_health="pending", health="up").announcement() is None
    for flag in ("paused", "in_maintenance", "is_flapping"):
        monitor = Monitor(alerted_health="up", health="down", **{flag: True})
        assert monitor.announcement() is None
        assert monitor.alerted_health == "up"  # held back, not forgotten


def test_a_flapping_monitor_settles_after_a_quiet_window():
    monitor = Monitor(is_flapping=True, flap_window=600, status_changed_at=T0)
    assert not monitor.settle_flapping(T0 + timedelta(seconds=599))
    assert monitor.settle_flapping(T0 + timedelta(seconds=600))
    assert not monitor.is_flapping
