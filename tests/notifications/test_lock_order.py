"""Ingest and the reminder sweep take their row locks in one order (see
`monitors/locks.py`), so when they meet on a monitor one waits for the other
and neither deadlocks. PostgreSQL only: SQLite locks the whole database, so
there is no row lock order to get wrong."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from monitors import ingest
from monitors.models import Incident
from notifications import services
from notifications.models import Channel, Notification
from tests.factories import MonitorFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL"),
]


def result(monitor, slot, ok: bool) -> dict:
    return {
        "monitor": monitor.pk, "slot": slot.isoformat(), "started_at": (slot + timedelta(seconds=1)).isoformat(),
        "ok": ok, "latency_ms": 10.0, "status_code": 200 if ok else 503,
        "error_kind": "ok" if ok else "status", "error": "" if ok else "HTTP 503, expected 200-399",
    }


def a_monitor_down_for_an_hour(user):
    """Down with an open incident, on a channel whose reminder is due."""
    channel = Channel.objects.create(owner=user, name="ops", kind="email", target="ops@example.com",
                                     reminder_interval=600)
    monitor = MonitorFactory(owner=user, retries=0, recovery_checks=1, interval=60)
    monitor.channels.set([channel])
    ingest.ingest_results("local", "probe@h", [result(monitor, timezone.now() - timedelta(hours=1), ok=False)])
    monitor.refresh_from_db()
    assert monitor.status == "down" and monitor.current_incident_id is not None
    return monitor


def wait_for_a_blocked_backend(seconds: float = 10.0) -> bool:
    # Asked from the ingest's own connection, inside its transaction, which
    # would otherwise see the activity snapshot of its first look forever.
    deadline = time.monotonic() + seconds
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT count(*) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND wait_event_type = 'Lock'")
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


def run_in_thread(target, errors: list) -> threading.Thread:
    def run():
        try:
            target()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_recovery_ingested_while_the_reminder_sweep_runs_completes_and_neither_deadlocks(user, monkeypatch):
    monitor = a_monitor_down_for_an_hour(user)
    ingest_holds_the_monitor, sweep_was_blocked = threading.Event(), []
    insert_new_results = ingest.insert_new_results

    def insert_once_the_sweep_is_blocked(*args, **kwargs):
        # The worst moment for the sweep to arrive: ingest has locked the
        # monitor and is about to write the incident's timeline.
        ingest_holds_the_monitor.set()
        sweep_was_blocked.append(wait_for_a_blocked_backend())
        return insert_new_results(*args, **kwargs)

    monkeypatch.setattr(ingest, "insert_new_results", insert_once_the_sweep_is_blocked)

    def sweep():
        assert ingest_holds_the_monitor.wait(10)
        services.send_reminders()

    errors: list[Exception] = []
    threads = [
        run_in_thread(lambda: ingest.ingest_results("local", "probe@h", [result(monitor, timezone.now(), ok=True)]),
                      errors),
        run_in_thread(sweep, errors),
    ]
    for thread in threads:
        thread.join(30)

    # The sweep really met the ingest's lock, and both finished without error.
    assert sweep_was_blocked == [True]
    assert errors == []
    # The recovery is committed, and the sweep, which waited for it, saw that
    # there is nothing left to remind anyone of.
    monitor.refresh_from_db()
    assert monitor.status == "up"
    assert Incident.objects.get().resolved_at is not None
    assert not Notification.objects.filter(event="reminder").exists()


def test_ingest_and_the_reminder_sweep_hammering_one_monitor_never_deadlock(user):
    monitor = a_monitor_down_for_an_hour(user)
    Channel.objects.update(reminder_interval=60)
    errors: list[Exception] = []
    start = timezone.now()

    def flip():
        # Alternating results: every message is a transition that writes
        # the incident (opened, then resolved) under the monitor's lock.
        for i in range(40):
            ingest.ingest_results("local", "probe@h", [result(monitor, start + timedelta(seconds=i), ok=i % 2 == 0)])

    def remind():
        # Each sweep is an hour after the last, so every open incident is due.
        for i in range(40):
            services.send_reminders(now=start + timedelta(hours=i + 1))

    threads = [run_in_thread(flip, errors), run_in_thread(remind, errors)]
    for thread in threads:
        thread.join(60)
    assert errors == []
