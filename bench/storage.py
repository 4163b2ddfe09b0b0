"""What a raw result costs on disk in PostgreSQL: heap and each index, in
bytes per row, for a realistic million results.

    python bench/storage.py                    # today's schema
    python bench/storage.py --migration 0006   # the schema before issue 12, for comparison

It creates (and drops) its own database `loopr_bench_storage` next to
DATABASE_URL's (default the local PostgreSQL), migrates it, and inserts
1,000 monitors × 2 regions × 500 slots a minute apart, time-ordered as ingest
writes them: about 2 % failures with a realistic message, latency spread
from 20 to 900 ms, 70 % of targets on HTTPS (a certificate expiry stored).
Sizes are printed while the day is being written and again after the day
closed and its partition was compacted (monitors/partitions.py), then the
time to drop that day's partition.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NAME = os.environ.get("LOOPR_STORAGE_DB", "loopr_bench_storage")

INSERT = """
INSERT INTO monitors_checkresult ({columns})
SELECT %(start)s + s * interval '60 s', %(start)s + s * interval '60 s' + (random() * 40) * interval '1 ms',
       CASE WHEN f.failed AND f.timeout THEN NULL ELSE 20 + random() * random() * 880 END,
       CASE WHEN m %% 10 < 7 THEN timestamptz '2027-03-01 12:00:00+00' END,
       m, r, {node},
       CASE WHEN f.failed AND f.timeout THEN NULL WHEN f.failed THEN 503 ELSE 200 END,
       NOT f.failed, false, false,
       CASE WHEN NOT f.failed THEN 'ok' WHEN f.timeout THEN 'timeout' ELSE 'status' END,
       CASE WHEN NOT f.failed THEN ''
            WHEN f.timeout THEN 'HTTPSConnectionPool(host=''api-' || m || '.example.com'', port=443): Read timed out. (read timeout=10)'
            ELSE 'HTTP 503, expected 200-399' END
FROM generate_series(0, %(slots)s - 1) s, unnest(%(monitors)s::bigint[]) m, unnest(%(regions)s::bigint[]) r,
     LATERAL (SELECT random() < 0.02 + 0 * m AS failed, random() < 0.5 + 0 * m AS timeout) f
ORDER BY s, r, m
"""
COLUMNS = ("scheduled_at, checked_at, latency_ms, tls_expires_at, monitor_id, region_id, {node_column}, status_code, "
           "ok, in_maintenance, impaired, error_kind, error")

SIZES = """
WITH parts AS (
    SELECT c.oid FROM pg_class c WHERE c.relname = 'monitors_checkresult' AND c.relkind = 'r'
    UNION ALL SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = 'monitors_checkresult'::regclass
)
SELECT 'heap', sum(pg_relation_size(oid)) FROM parts
UNION ALL SELECT 'toast', sum(coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0))
    FROM parts JOIN pg_class c USING (oid)
UNION ALL SELECT coalesce(parent.relname, ix.relname), sum(pg_relation_size(ix.oid))
    FROM parts JOIN pg_index i ON i.indrelid = parts.oid JOIN pg_class ix ON ix.oid = i.indexrelid
    LEFT JOIN pg_inherits h ON h.inhrelid = ix.oid LEFT JOIN pg_class parent ON parent.oid = h.inhparent
    GROUP BY 1
"""


def admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


def setup_database(url: str, migration: str | None) -> str:
    with psycopg.connect(admin_url(url), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {NAME}")
    target = url.rsplit("/", 1)[0] + f"/{NAME}"
    os.environ["DATABASE_URL"] = target
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopr.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", "django_celery_beat", verbosity=0)  # its post_migrate hook needs its tables
    if migration:
        call_command("migrate", "monitors", migration, verbosity=0)
    else:
        call_command("migrate", verbosity=0)
    return target


def fixtures(db: psycopg.Connection, monitors: int) -> tuple[list[int], list[int]]:
    db.execute("INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, "
               "is_active, date_joined, last_login) VALUES ('', false, 'bench', '', '', '', false, true, now(), now())")
    regions = [db.execute("INSERT INTO workers_region (name, label, created_at) VALUES (%s, '', now()) RETURNING id",
                          [name]).fetchone()[0] for name in ("eu-west", "us-east")]
    ids = [row[0] for row in db.execute(
        "INSERT INTO monitors_monitor (owner_id, name, url, interval, timeout, method, headers, body, "
        "expected_status, keyword, follow_redirects, retries, recovery_checks, flap_threshold, flap_window, "
        "paused, status, health, alerted_health, in_maintenance, is_flapping, next_check_at, "
        "consecutive_failures, consecutive_successes, failure_kind, failure_message, failure_regions, "
        "region_results, created_at, updated_at, badge_token) SELECT (SELECT id FROM auth_user), 'm' || n, "
        "'https://api-' || n || '.example.com/health', 60, 10, 'GET', '{}', '', '200-399', '', true, 1, 1, 5, "
        "600, false, 'up', 'up', 'up', false, false, now(), 0, 0, '', '', '{}', '{}', now(), now(), "
        "md5(random()::text || n) FROM generate_series(1, %s) n RETURNING id", [monitors]).fetchall()]
    return ids, regions


def sizes(db: psycopg.Connection, rows: int) -> dict[str, float]:
    return {name: float(size) / rows for name, size in db.execute(SIZES).fetchall() if size}


def show(title: str, per_row: dict[str, float]) -> None:
    print(f"\n{title}")
    for name, value in per_row.items():
        print(f"  {name:40s} {value:7.1f} B/row")
    print(f"  {'total':40s} {sum(per_row.values()):7.1f} B/row  = {sum(per_row.values()):.0f} MB per million")


def roll_up(db: psycopg.Connection, results: int) -> None:
    """Roll the million up into hour and day buckets: what that costs, and what a bucket costs on disk."""
    from monitors import rollups

    began, cpu = time.perf_counter(), time.process_time()
    hours, _ = rollups.roll_up(budget_seconds=3600)
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    db.execute("VACUUM monitors_rollup")
    count = db.execute("SELECT count(*), count(*) FILTER (WHERE resolution = 'hour') FROM monitors_rollup").fetchone()
    size = db.execute("SELECT pg_total_relation_size('monitors_rollup'), pg_relation_size('monitors_rollup')"
                      ).fetchone()
    print(f"\nrolled up {hours} hours into {count[0]:,} buckets ({count[1]:,} of an hour) in {wall:.1f} s, "
          f"{cpu:.1f} s of it Python CPU: {wall / results * 1e6:.1f} µs per result")
    print(f"  a bucket row: {size[1] / count[0]:.0f} B heap, {size[0] / count[0]:.0f} B with its indexes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--migration", help="measure the monitors schema at this migration (e.g. 0006)")
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=500)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/loopr")
    target = setup_database(url, args.migration)
    start = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    with psycopg.connect(target, autocommit=True) as db:
        monitors, regions = fixtures(db, args.monitors)
        has_node_text = db.execute("SELECT 1 FROM information_schema.columns WHERE table_name = "
                                   "'monitors_checkresult' AND column_name = 'node'").fetchone()
        if has_node_text:
            columns, node = COLUMNS.format(node_column="node"), "'probe-' || r || '-' || (m %% 2) || '@probe-host-1'"
        else:
            for region in regions:
                for n in range(2):
                    db.execute("INSERT INTO workers_workernode (name, region_id, state, version, concurrency, "
                               "last_heartbeat_at, checks_done, failures, last_error, canary_error, "
                               "rejected_results) VALUES (%s, %s, 'online', '', 0, now(), 0, 0, '', '', 0)",
                               [f"probe-{region}-{n}@probe-host-1", region])
            columns, node = COLUMNS.format(node_column="node_id"), "(SELECT min(id) FROM workers_workernode) + m %% 4"
        if not has_node_text:
            from monitors import partitions

            partitions.ensure_partitions(start.date(), ahead=0, back=0)
        began = time.perf_counter()
        db.execute(INSERT.format(columns=columns, node=node),
                   {"start": start, "slots": args.slots, "monitors": monitors, "regions": regions})
        inserted = time.perf_counter() - began
        rows = db.execute("SELECT count(*) FROM monitors_checkresult").fetchone()[0]
        failed = db.execute("SELECT count(*) FROM monitors_checkresult WHERE NOT ok").fetchone()[0]
        db.execute("VACUUM ANALYZE monitors_checkresult")
        print(f"{rows:,} results ({failed / rows:.1%} failed) inserted in {inserted:.1f} s "
              f"(one INSERT … SELECT, time-ordered)")
        show("as written (the day still open)", sizes(db, rows))
        if not has_node_text:
            compacted = partitions.compact_closed_partitions(datetime.now(UTC))
            show(f"after the day closed and was compacted ({', '.join(compacted)})", sizes(db, rows))
            roll_up(db, rows)
            day = start.date()
            began = time.perf_counter()
            dropped = partitions.drop_expired_partitions(start + timedelta(days=1))
            took = time.perf_counter() - began
            print(f"\ndropping {', '.join(dropped)} ({rows:,} rows): {took * 1000:.0f} ms "
                  f"(day {day}; retention drops whole days)")
    with psycopg.connect(admin_url(url), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")


if __name__ == "__main__":
    main()
