"""Heartbeats' deadlines live in a narrow table of their own (the late
sweep's index), kept by triggers on the monitor table, so that a steady
ping's update of the monitor writes into none of its indexes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from monitors.models import HeartbeatDeadline, Monitor
from tests.factories import UserFactory
from tests.teams.test_migration import executor_leaf_nodes, migrate

BEFORE = [("monitors", "0014_merge_config_slugs")]
AFTER = [("monitors", "0015_heartbeat_deadlines")]


def deadlines() -> dict[int, object]:
    return dict(HeartbeatDeadline.objects.values_list("monitor_id", "due_at"))


@pytest.fixture
def before_deadlines(transactional_db):
    apps = migrate(BEFORE)
    yield apps
    migrate(executor_leaf_nodes())


def test_existing_heartbeats_deadlines_are_carried_into_the_sweeps_table(before_deadlines):
    Monitor_ = before_deadlines.get_model("monitors", "Monitor")
    team = before_deadlines.get_model("teams", "Team").objects.create(name="ops")
    due = timezone.now() + timedelta(minutes=5)
    made = [Monitor_.objects.create(team=team, name=name, slug=name, interval=60, **fields) for name, fields in (
        ("due", {"kind": "heartbeat", "url": "", "next_ping_due_at": due}),
        ("paused", {"kind": "heartbeat", "url": "", "next_ping_due_at": due, "paused": True}),
        ("pending", {"kind": "heartbeat", "url": ""}),
        ("site", {"kind": "http", "url": "http://127.0.0.1:9/"}),
    )]
    waiting = made[0]

    migrate(AFTER)

    # Only the unpaused heartbeat with a deadline has a row, with its deadline.
    assert deadlines() == {waiting.pk: due}


def test_the_triggers_keep_the_row_with_the_monitor_whatever_writes_it(db):
    monitor = Monitor.objects.create(owner=UserFactory(), name="backup", kind="heartbeat", url="", interval=60)
    assert deadlines() == {}  # pending: no deadline yet

    due = timezone.now() + timedelta(minutes=2)
    monitor.next_ping_due_at = due
    monitor.save()
    assert deadlines() == {monitor.pk: due}

    # A bulk update (no save()) moves it too; pausing takes it out, resuming puts it back.
    later = due + timedelta(minutes=1)
    Monitor.objects.filter(pk=monitor.pk).update(next_ping_due_at=later)
    assert deadlines() == {monitor.pk: later}
    Monitor.objects.filter(pk=monitor.pk).update(paused=True)
    assert deadlines() == {}
    Monitor.objects.filter(pk=monitor.pk).update(paused=False)
    assert deadlines() == {monitor.pk: later}

    Monitor.objects.filter(pk=monitor.pk).delete()
    assert deadlines() == {}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="HOT updates are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_steady_pings_update_of_the_monitor_is_hot() -> None:
    from django.test import Client

    def hot_updates() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")  # this connection's counts, now
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'monitors_monitor'")
            return cursor.fetchone()[0]

    monitor = Monitor.objects.create(owner=UserFactory(), name="backup", kind="heartbeat", url="", interval=60)
    web = Client()
    assert web.get(f"/ping/{monitor.ping_uuid}").status_code == 200  # pending to up: the state machine's path
    before = hot_updates()

    for _ in range(5):
        assert web.get(f"/ping/{monitor.ping_uuid}").status_code == 200

    assert hot_updates() - before == 5
    # and the sweep's row followed each new deadline
    assert deadlines()[monitor.pk] == Monitor.objects.get(pk=monitor.pk).next_ping_due_at
