"""Heartbeat ping throughput: pings per second the web tier takes, each one
committed (ping, result, state) before its 200, measured against the real
web (gunicorn as the Procfile runs it) on PostgreSQL.

    .venv/bin/python bench/pings.py                 # 20 s, 64 connections, 500 heartbeats
    .venv/bin/python bench/pings.py --duration 30 --connections 32 --web-concurrency 2

It creates its own database `loopr_bench_pings` afresh each run. Every
heartbeat is pinged once before the clock starts (its first ping, pending to
up, is a state change and takes the state machine's path); what is measured
is the steady state, success pings of heartbeats that are up. Two baselines,
in the same run and on the same web processes: the landing page `/` (a
template, no database, through all the site's middleware) and
`/ping/bench-insert` (bench/pings_urls.py: one durable INSERT through the
Django handler a ping URL's callable falls back to). The
client is one asyncio process with keep-alive connections, so the machine's
two cores go to the server as far as possible. Afterwards it checks that the
database holds exactly one ping for every 200 the client got.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

from bench.run import free_port, recreate_database, wait_port, with_database  # noqa: E402


async def hammer(port: int, paths: list[str], connections: int, seconds: float, once: bool = False
                 ) -> tuple[int, Counter]:
    """Keep-alive GETs round-robin over `paths` for `seconds` (or each path
    once); returns (200s, the other statuses counted)."""
    ok, other = 0, Counter()
    deadline = time.monotonic() + seconds

    async def one(offset: int) -> None:
        nonlocal ok, other
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        index = offset
        while (index < len(paths)) if once else (time.monotonic() < deadline):
            path = paths[index % len(paths)]
            index += connections
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            status = status_line.split()[1:2]
            if status == [b"200"]:
                ok += 1
            else:
                other[b"".join(status).decode() or "no answer"] += 1
        writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))
    return ok, other


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes used so far (/proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--heartbeats", type=int, default=500)
    parser.add_argument("--web-concurrency", type=int, default=2, help="gunicorn workers (Procfile's default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (Procfile's 8)")
    parser.add_argument("--pings-only", action="store_true", help="skip the two baselines")
    args = parser.parse_args()

    url = with_database(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
                        "loopr_bench_pings")
    recreate_database(url)
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench", "DJANGO_SETTINGS_MODULE": "bench.pings_site", "REDIS_URL": os.environ.get(
        "REDIS_URL", "redis://127.0.0.1:6379/13"), "LOG_LEVEL": "WARNING",
        # A heartbeat takes LOOPR_PING_RATE pings a minute; the bench pings each far more often.
        "LOOPR_PING_RATE": "1000000"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_insert (id bigserial PRIMARY KEY, at timestamptz NOT NULL, body text)")
    setup = (
        "from django.contrib.auth.models import User; from monitors.models import Monitor;"
        "u = User.objects.create(username='bench');"
        f"Monitor.objects.bulk_create([Monitor(owner=u, name=f'hb{{i}}', kind='heartbeat', url='', interval=3600,"
        f" grace=3600) for i in range({args.heartbeats})]);"
        "print('\\n'.join(str(k) for k in Monitor.objects.values_list('ping_uuid', flat=True)))"
    )
    printed = subprocess.run([sys.executable, "manage.py", "shell", "-c", setup], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True).stdout
    keys = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", printed)
    port = free_port()
    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "loopr.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(args.web_concurrency),
         "--threads", str(args.threads), "--control-socket", f"/tmp/loopr-bench-pings-{port}.ctl"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(port, timeout=30)
        asyncio.run(hammer(port, ["/"], 4, 2.0))  # warm-up: workers loaded, connections open
        first, _ = asyncio.run(hammer(port, [f"/ping/{k}" for k in keys], 4, 0.0, once=True))
        # Every thread's database connection open (a thread and its connection
        # start with the thread pool's first request beyond the busy ones).
        asyncio.run(hammer(port, ["/ping/bench-insert"], args.connections, 1.0))
        workers = children(web.pid)

        def backend_cpu() -> dict[int, float]:
            """CPU used so far by each of the web's PostgreSQL backends (a backend
            opened during a phase counts from zero: a thread's connection opens
            with its thread, which may be mid-phase)."""
            with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
                pids = [row[0] for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'")]
            return {pid: cpu_seconds([pid]) for pid in pids}

        def phase(label: str, paths: list[str]) -> int:
            """One measured phase; prints its rate and the CPU it cost per request (web, database)."""
            web_cpu, db_before = cpu_seconds(workers), backend_cpu()
            ok, other = asyncio.run(hammer(port, paths, args.connections, args.duration))
            db_after = backend_cpu()
            web_cpu = cpu_seconds(workers) - web_cpu
            db_cpu = sum(used - db_before.get(pid, 0.0) for pid, used in db_after.items())
            print(f"{label}: {ok / args.duration:.0f}/s (non-200: {dict(other)}); CPU per request: "
                  f"web {web_cpu / max(ok, 1) * 1e3:.2f} ms, PostgreSQL {db_cpu / max(ok, 1) * 1e3:.2f} ms")
            return ok

        print(f"load before: {load()}")
        base_ok = 0 if args.pings_only else phase("baseline GET /", ["/"])
        insert_ok = 0 if args.pings_only else phase("baseline one INSERT", ["/ping/bench-insert"])
        ok = phase("pings", [f"/ping/{k}" for k in keys])
        if not args.pings_only:
            print(f"pings: {ok / max(base_ok, 1):.2f} x GET /, {ok / max(insert_ok, 1):.2f} x one INSERT")
        print(f"load after: {load()}")
        ok += first
    finally:
        web.terminate()
        web.wait(30)
    stored = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from monitors.models import Ping, CheckResult; print('COUNTS', Ping.objects.count(), "
         "CheckResult.objects.count())"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout.split("COUNTS")[-1].split()
    print(f"stored: {stored[0]} pings, {stored[1]} results for {ok} answered 200 (durable: {int(stored[0]) == ok})")
    return 0 if int(stored[0]) == ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
