"""The dispatch tick's CPU per check sent, in process, on PostgreSQL and
Redis: Python's and the database backend's, for the checkout given.

    python bench/dispatch_cpu.py                    # this checkout
    python bench/dispatch_cpu.py --root /path/to/other/checkout
    python bench/dispatch_cpu.py --profile out.prof # and a cProfile of the ticks

It creates (and drops) the database `<DATABASE_URL's name>_dispatch_cpu`,
10,000 monitors every 10 s with one live region, and runs the real tick
(`workers.tasks.dispatch_due_checks`: claim, route, ledger, publish to the
broker at REDIS_URL, then the re-dispatch sweep) over rounds in which every
monitor is due, so each round sends every monitor once in batches of
LOOPR_BATCH_SIZE. The probe queue and the ledger are emptied between rounds
(outside the measurement).
"""

from __future__ import annotations

import argparse
import cProfile
import os
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
    parser.add_argument("--monitors", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the measured rounds")
    parser.add_argument("--sweeps", type=int, default=20,
                        help="then time this many re-dispatch sweeps behind a probe backlog (0: none)")
    args = parser.parse_args()
    sys.path.insert(0, args.root)
    os.chdir(args.root)
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/loopr")
    base, name = url.rsplit("/", 1)
    name = f"{name}_dispatch_cpu"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    os.environ["DATABASE_URL"] = f"{base}/{name}"
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopr.settings")
    os.environ.setdefault("LOOPR_MIN_INTERVAL", "1")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection

    from monitors.models import Monitor
    from workers.models import Region, queue_for
    from workers.tasks import dispatch_due_checks

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    owner = get_user_model().objects.create(username="bench")
    Region.objects.create(name="local", last_seen_at=datetime.now(UTC) + timedelta(days=1))
    Monitor.objects.bulk_create(
        Monitor(owner=owner, name=f"m{n}", url=f"http://127.0.0.1:9/{n}", interval=10, timeout=5,
                status="up", health="up", alerted_health="up", next_check_at=datetime.now(UTC) + timedelta(days=1))
        for n in range(args.monitors))

    def reset() -> None:
        # Every monitor due within the last second, as a steady tick finds a
        # second's worth of them.
        with connection.cursor() as cursor:
            cursor.execute("UPDATE monitors_monitor SET next_check_at = clock_timestamp() - interval '0.5 s'")
        broker.delete(queue_for("local"), "loopr:owed", "loopr:owed:resent")

    def tick() -> int:
        sent = 0
        # A tick stops after ~0.9 s; the next ones take the rest. Stopping at
        # one round's worth keeps a slow round from claiming the next slots.
        while sent < args.monitors:
            sent += dispatch_due_checks()
        return sent

    reset()
    tick()  # warm-up: imports, plans, the broker connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    # CPU time, not wall time: the machine may be shared.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    cpu = db_cpu = wall = 0.0
    sent = 0
    for _ in range(args.rounds):
        reset()
        c0, d0, w0 = time.process_time(), backend_cpu(pid), time.perf_counter()
        if profiler:
            profiler.enable()
        sent += tick()
        if profiler:
            profiler.disable()
        cpu += time.process_time() - c0
        db_cpu += backend_cpu(pid) - d0
        wall += time.perf_counter() - w0
    if profiler:
        profiler.dump_stats(args.profile)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{args.root}: {sent:,} checks sent in {wall:.2f} s; CPU per check: Python {cpu / sent * 1e6:.0f} µs, "
          f"PostgreSQL backend {db_cpu / sent * 1e6:.0f} µs, total {(cpu + db_cpu) / sent * 1e6:.0f} µs "
          f"(load {load})")
    if args.sweeps:
        sweep_behind_a_backlog(broker, args.sweeps)
    broker.delete(queue_for("local"), "loopr:owed", "loopr:owed:resent")
    connection.close()
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def sweep_behind_a_backlog(broker, sweeps: int) -> None:
    """The sweep as a loaded bench finds it: every owed check past its
    deadline while the probe queue holds a backlog, so each tick looks at
    LIMIT entries and postpones them all."""
    from django.db import connection

    from monitors.models import Monitor
    from workers import redispatch
    from workers.ledger import OWED, Ledger, key
    from workers.models import queue_for

    ids = list(Monitor.objects.order_by("pk").values_list("pk", flat=True)[: redispatch.LIMIT])
    slot = int((time.time() - 30) * 1e6)
    past = {key(i, "local", slot): time.time() - 10 for i in ids}
    broker.delete(queue_for("local"), OWED, "loopr:owed:resent")
    broker.rpush(queue_for("local"), *[b"x"] * (redispatch.PROBE_BACKLOG + 10))
    ledger = Ledger(broker)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    cpu = db_cpu = 0.0
    for _ in range(sweeps):
        broker.zadd(OWED, past)
        c0, d0 = time.process_time(), backend_cpu(pid)
        outcome = redispatch.sweep(ledger, lambda *a: None)
        cpu += time.process_time() - c0
        db_cpu += backend_cpu(pid) - d0
    assert outcome == {"resent": 0, "missed": 0, "postponed": len(ids)}, outcome
    print(f"re-dispatch sweep behind a probe backlog, {len(ids):,} overdue entries: Python {cpu / sweeps * 1e3:.1f} ms, "
          f"PostgreSQL backend {db_cpu / sweeps * 1e3:.1f} ms a sweep")


if __name__ == "__main__":
    main()
