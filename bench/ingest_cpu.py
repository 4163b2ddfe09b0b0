"""Ingest's CPU per result, in process, on PostgreSQL: Python's and the
database backend's, for the checkout given (to compare two commits on the
same machine in the same minutes).

    python bench/ingest_cpu.py                      # this checkout
    python bench/ingest_cpu.py --root /path/to/other/checkout

It creates (and drops) the database `<DATABASE_URL's name>_ingest_cpu`, 1,000 monitors, and
feeds `monitors.ingest.ingest_results` messages of 100 results (a probe
batch), each monitor's slots a minute apart, about 2 % failing.
"""

from __future__ import annotations

import argparse
import inspect
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.run import process_cpu as backend_cpu  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile (CPU time) of the measured messages")
    args = parser.parse_args()
    sys.path.insert(0, args.root)
    os.chdir(args.root)
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/loopr")
    base, name = url.rsplit("/", 1)
    # Named after the caller's database, so that runs of two checkouts (or
    # two people) on one server do not drop each other's.
    db_name = f"{name}_ingest_cpu"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {db_name}")
    os.environ["DATABASE_URL"] = f"{base}/{db_name}"
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopr.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", "django_celery_beat", verbosity=0)
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.db import connection

    from monitors import ingest
    from monitors.models import Monitor

    owner = get_user_model().objects.create(username="bench")
    monitors = Monitor.objects.bulk_create(
        Monitor(owner=owner, name=f"m{n}", url=f"https://api-{n}.example.com/", interval=60, timeout=10)
        for n in range(1000))
    extra = {}
    if "node_id" in inspect.signature(ingest.ingest_results).parameters:
        from workers.models import Region, WorkerNode

        region = Region.objects.create(name="eu")
        extra["node_id"] = WorkerNode.objects.create(name="probe@h", region=region,
                                                     last_heartbeat_at=datetime.now(UTC)).pk
    rng = random.Random(1)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    messages = []
    for n in range(args.messages):
        slot = start + timedelta(minutes=n // 10)
        batch = monitors[(n % 10) * 100:(n % 10 + 1) * 100]
        messages.append([{
            "monitor": m.pk, "slot": slot.isoformat(), "started_at": (slot + timedelta(milliseconds=5)).isoformat(),
            "ok": (ok := rng.random() > 0.02), "latency_ms": rng.uniform(20, 400) if ok else None,
            "status_code": 200 if ok else None, "error_kind": "ok" if ok else "timeout",
            "error": "" if ok else "Read timed out. (read timeout=10)", "tls_expires_at": None,
        } for m in batch])
    for message in messages[:20]:  # warm-up: caches, plans
        ingest.ingest_results("eu", "probe@h", message, **extra)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    import cProfile

    profiler = cProfile.Profile(time.process_time) if args.profile else None
    cpu, db_cpu, wall = time.process_time(), backend_cpu(pid), time.perf_counter()
    if profiler:
        profiler.enable()
    for message in messages[20:]:
        ingest.ingest_results("eu", "probe@h", message, **extra)
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    cpu, db_cpu, wall = time.process_time() - cpu, backend_cpu(pid) - db_cpu, time.perf_counter() - wall
    results = 100 * (len(messages) - 20)
    print(f"{args.root}: {results:,} results in {wall:.2f} s; CPU per result: Python {cpu / results * 1e6:.0f} µs, "
          f"PostgreSQL backend {db_cpu / results * 1e6:.0f} µs, total {(cpu + db_cpu) / results * 1e6:.0f} µs")
    connection.close()
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


if __name__ == "__main__":
    main()
