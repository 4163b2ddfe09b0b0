"""Raw results on PostgreSQL: a partition per day, created ahead, dropped
whole on expiry, compacted once closed; the migration keeps existing rows."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from monitors import ingest, partitions, retention
from monitors.models import CheckResult
from monitors.regions import Region
from tests.factories import MonitorFactory
from tests.monitors.test_ingest import result

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                       reason="partitioning is PostgreSQL's; SQLite keeps a plain table"),
]


def partition_of(monitor_id: int, slot: datetime) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM monitors_checkresult WHERE monitor_id = %s "
                       "AND scheduled_at = %s", [monitor_id, slot])
        return cursor.fetchone()[0]


def test_the_migration_leaves_today_and_three_days_ahead_partitioned():
    today = timezone.now().date()
    assert {today + timedelta(days=n) for n in range(4)} <= set(partitions.partitions())


def test_a_result_is_stored_in_the_partition_of_its_scheduled_day():
    monitor = MonitorFactory()
    slot = timezone.now().replace(microsecond=0)
    ingest.ingest_results("local", "a@h", [result(monitor, slot)])
    assert partition_of(monitor.pk, slot) == partitions.partition_name(slot.astimezone(UTC).date())


def test_creating_a_day_later_moves_its_rows_out_of_the_default_partition():
    monitor = MonitorFactory()
    slot = (timezone.now() + timedelta(days=10)).replace(microsecond=0)
    # Written directly: ingest refuses a slot this far ahead of the clock.
    CheckResult.objects.create(monitor=monitor, region=Region.objects.get_or_create(name="local")[0],
                               scheduled_at=slot, checked_at=slot, ok=True)
    assert partition_of(monitor.pk, slot) == partitions.DEFAULT
    created = partitions.ensure_partitions(slot.date(), ahead=0, back=0)
    assert created == [partitions.partition_name(slot.date())]
    assert partition_of(monitor.pk, slot) == created[0]
    assert CheckResult.objects.filter(monitor=monitor).count() == 1


def test_pruning_drops_expired_days_whole_and_keeps_the_days_within_retention(settings):
    settings.LOOPR_RESULTS_RETENTION_DAYS = 14
    monitor = MonitorFactory()
    now = timezone.now()
    partitions.ensure_partitions(now.date(), back=20)
    expired = [result(monitor, now - timedelta(days=16, minutes=i)) for i in range(30)]
    kept = [result(monitor, now - timedelta(days=13, minutes=i)) for i in range(5)]
    ingest.ingest_results("local", "a@h", expired + kept)
    retention.prune_results(now=now)
    days = partitions.partitions()
    cutoff_day = (now - timedelta(days=14)).astimezone(UTC).date()
    assert min(days) == cutoff_day  # the day holding the cutoff stays until it is all past
    assert (now - timedelta(days=16)).date() not in days
    assert CheckResult.objects.count() == 5
    # and the days ahead are there
    assert now.date() + timedelta(days=partitions.AHEAD_DAYS) in days


def test_a_closed_day_is_compacted_once_and_its_index_shrinks():
    monitor_ids = [MonitorFactory().pk for _ in range(50)]
    day = (timezone.now() - timedelta(days=3)).date()
    partitions.ensure_partitions(day, ahead=0, back=0)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    with connection.cursor() as cursor:
        region = ingest.region_id("local")
        # Time-ordered, interleaved across monitors, as ingest writes them.
        cursor.execute(
            "INSERT INTO monitors_checkresult (scheduled_at, checked_at, monitor_id, region_id, ok, in_maintenance, "
            "impaired, error_kind, error) SELECT %s + s * interval '60 s', %s + s * interval '60 s', m, %s, true, "
            "false, false, 'ok', '' FROM generate_series(0, 1399) s, unnest(%s::int[]) m ORDER BY s, m",
            [start, start, region, monitor_ids],
        )
        name = partitions.partition_name(day)
        size = f"SELECT pg_relation_size('{name}_pkey')"
        cursor.execute(size)
        before = cursor.fetchone()[0]
        assert partitions.compact_closed_partitions(timezone.now()).count(name) == 1
        cursor.execute(size)
        after = cursor.fetchone()[0]
    assert after < before * 0.9
    assert name not in partitions.compact_closed_partitions(timezone.now())


def test_todays_partition_is_not_compacted_while_it_is_written():
    assert partitions.partition_name(timezone.now().date()) not in partitions.compact_closed_partitions(timezone.now())


@pytest.fixture
def scratch_database():
    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    name = f"{connection.settings_dict['NAME']}_migration"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    yield f"{base}/{name}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def manage(url: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True,
                   timeout=300)


def test_the_migration_keeps_every_existing_result_and_its_node_name(scratch_database):
    manage(scratch_database, "migrate", "django_celery_beat")  # its post_migrate hook needs its tables
    manage(scratch_database, "migrate", "auth")
    manage(scratch_database, "migrate", "monitors", "0006")
    with psycopg.connect(scratch_database, autocommit=True) as db:
        db.execute("INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, "
                   "is_active, date_joined) VALUES ('', false, 'u', '', '', '', false, true, now())")
        db.execute("INSERT INTO workers_region (name, label, created_at) VALUES ('eu', '', now())")
        db.execute(
            "INSERT INTO monitors_monitor (owner_id, name, url, interval, timeout, method, headers, body, "
            "expected_status, keyword, follow_redirects, retries, recovery_checks, flap_threshold, flap_window, "
            "paused, status, health, alerted_health, in_maintenance, is_flapping, next_check_at, "
            "consecutive_failures, consecutive_successes, failure_kind, failure_message, failure_regions, "
            "region_results, created_at, updated_at) SELECT id, 'm', 'http://x/', 60, 5, 'GET', '{}', '', '200', '', "
            "true, 1, 1, 5, 600, false, 'up', 'up', 'up', false, false, now(), 0, 0, '', '', '{}', '{}', now(), "
            "now() FROM auth_user")
        db.execute(
            "INSERT INTO monitors_checkresult (monitor_id, region_id, node, scheduled_at, checked_at, ok, "
            "latency_ms, status_code, error_kind, error, in_maintenance, impaired) "
            "SELECT (SELECT id FROM monitors_monitor), (SELECT id FROM workers_region), 'probe-' || (s % 2), "
            "now() - s * interval '1 hour', now() - s * interval '1 hour', s % 7 <> 0, s, 200, "
            "CASE WHEN s % 7 = 0 THEN 'timeout' ELSE 'ok' END, '', false, false FROM generate_series(0, 99) s")
        before = db.execute("SELECT id, scheduled_at, ok, latency_ms, node FROM monitors_checkresult "
                            "ORDER BY id").fetchall()
    manage(scratch_database, "migrate")
    with psycopg.connect(scratch_database) as db:
        after = db.execute("SELECT r.id, r.scheduled_at, r.ok, r.latency_ms, n.name FROM monitors_checkresult r "
                           "JOIN workers_workernode n ON n.id = r.node_id ORDER BY r.id").fetchall()
        default_rows = db.execute(f"SELECT count(*) FROM {partitions.DEFAULT}").fetchone()[0]
        new_id = db.execute(
            "INSERT INTO monitors_checkresult (monitor_id, region_id, scheduled_at, checked_at, ok, in_maintenance, "
            "impaired, error_kind, error) SELECT monitor_id, region_id, now() + interval '1 minute', now(), true, "
            "false, false, 'ok', '' FROM monitors_checkresult LIMIT 1 RETURNING id").fetchone()[0]
    assert after == before and len(after) == 100
    assert default_rows == 0  # every day of the old rows got its partition
    assert new_id > max(row[0] for row in before)
