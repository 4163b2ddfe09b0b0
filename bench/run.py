"""Loopr's benchmark harness: the real system (PostgreSQL, Redis, beat,
dispatcher, central worker, probe worker) against a fast local target, with a bare `requests.get`
loop measured in the same run as the baseline.

    python3 dev.py bench                       # the default scenarios, table to BENCHMARKS.md
    python3 dev.py bench --monitors 2000 --interval 2 --duration 20 --no-write

It needs PostgreSQL and Redis (DATABASE_URL / REDIS_URL, default the local
ones); it creates and drops its own database `loopr_bench` and uses Redis
database 13 unless told otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- measuring processes ----------------------------------------------------------


def _stat(pid: int) -> tuple[int, str, float] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
    return ppid, comm, (utime + stime) / CLK_TCK


def process_table() -> dict[int, tuple[int, str, float]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat:
                table[int(entry)] = stat
    return table


def tree_cpu(table: dict, root: int) -> float:
    """CPU seconds of a process and all its descendants (prefork children)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            total += table[pid][2]
        stack.extend(children.get(pid, []))
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores, kernel included)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def comm_cpu(table: dict, name: str) -> float:
    return sum(cpu for _, comm, cpu in table.values() if comm == name)


# --- setup -------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def baseline(urls: list[str], seconds: float) -> tuple[float, float]:
    """The bare single-process loop: requests.get with a fresh connection."""
    import requests

    started, cpu0, n = time.monotonic(), time.process_time(), 0
    while time.monotonic() - started < seconds:
        requests.get(urls[n % len(urls)], timeout=5).close()
        n += 1
    elapsed = time.monotonic() - started
    return n / elapsed, (time.process_time() - cpu0) / n


def time_wait_sockets() -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                count += sum(1 for line in f if line.split()[3:4] == ["06"])
        except OSError:
            pass
    return count


def wait_for_time_wait_to_drain(limit: int = 2000, timeout: float = 75) -> None:
    """Start each measurement with the kernel's TIME_WAIT table (nearly) empty,
    so that one scenario's closed connections do not slow the next one down."""
    deadline = time.monotonic() + timeout
    while time_wait_sockets() > limit and time.monotonic() < deadline:
        time.sleep(2)


@dataclass
class Scenario:
    monitors: int
    interval: int
    duration: float
    warmup: float
    probe_concurrency: int
    central_concurrency: int

    @property
    def offered(self) -> float:
        return self.monitors / self.interval


@dataclass
class Outcome:
    scenario: Scenario
    checks_per_s: float
    lag_p50: float
    lag_p99: float
    failed: int
    cpu_per_check_ms: dict[str, float]
    cpu_total_s: float
    machine_busy: float
    backlog: dict[str, int]


def run_scenario(sc: Scenario, env: dict, target_urls: list[str], log_dir: Path) -> Outcome:
    import django
    from django.db import connection

    recreate_database(env["DATABASE_URL"])
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    import redis

    redis.Redis.from_url(env["REDIS_URL"]).flushdb()

    os.environ.update(env)
    from django.apps import apps

    if not apps.ready:
        django.setup()
    connection.close()
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from monitors.models import Monitor

    from workers.models import NodeToken

    owner = get_user_model().objects.create(username="bench")
    _, node_token = NodeToken.issue("local", label="bench")
    start = timezone.now() + dt.timedelta(seconds=5)
    Monitor.objects.bulk_create(
        [
            Monitor(owner=owner, name=f"bench {i}", url=target_urls[i % len(target_urls)],
                    interval=sc.interval, timeout=5,
                    next_check_at=start + dt.timedelta(seconds=sc.interval * i / sc.monitors))
            for i in range(sc.monitors)
        ],
        batch_size=2000,
    )
    connection.close()

    celery = str(BIN / "celery")
    procs: dict[str, subprocess.Popen] = {}

    def start_proc(kind: str, args: list[str], **extra: str) -> None:
        log = open(log_dir / f"{kind}.log", "wb")
        procs[kind] = subprocess.Popen(args, cwd=ROOT, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)

    start_proc("central", [celery, "-A", "loopr", "worker", "-Q", "central,ingest,heartbeat", "-n", "central@%h",
                           "-c", str(sc.central_concurrency), "-l", "WARNING"])
    # The Procfile's dispatcher: the dispatch tick's own queue and process.
    start_proc("dispatcher", [celery, "-A", "loopr", "worker", "-Q", "dispatch", "-n", "dispatch@%h",
                              "--pool", "solo", "-l", "WARNING"])
    start_proc("probe", [celery, "-A", "loopr", "worker", "-Q", "probe.local", "-n", "probe@%h",
                         "-c", str(sc.probe_concurrency), "-l", "WARNING"],
               DATABASE_URL="postgres://nobody@127.0.0.1:1/none", LOOPR_NODE_TOKEN=node_token)
    time.sleep(3)  # the probe's first heartbeat makes region "local" live
    start_proc("beat", [celery, "-A", "loopr", "beat", "-l", "WARNING", "-s", str(log_dir / "beat-schedule")])
    try:
        time.sleep(5 + sc.warmup)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), coalesce(max(id), 0) FROM monitors_checkresult")
            n0, id0 = cursor.fetchone()
            table0, wall0, machine0 = process_table(), time.monotonic(), machine_busy_seconds()
            time.sleep(sc.duration)
            cursor.execute("SELECT count(*) FROM monitors_checkresult")
            n1 = cursor.fetchone()[0]
            table1, wall1, machine1 = process_table(), time.monotonic(), machine_busy_seconds()
            cursor.execute(
                """SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                          percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
                          count(*) FILTER (WHERE NOT ok)
                   FROM (SELECT extract(epoch FROM checked_at - scheduled_at) AS lag, ok
                         FROM monitors_checkresult WHERE id > %s) s""",
                [id0],
            )
            p50, p99, failed = cursor.fetchone()
        connection.close()
        broker = redis.Redis.from_url(env["REDIS_URL"])
        backlog = {queue: broker.llen(queue) for queue in ("probe.local", "ingest")}
    finally:
        for proc in procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    checks = n1 - n0
    cpu = {kind: tree_cpu(table1, p.pid) - tree_cpu(table0, p.pid) for kind, p in procs.items()}
    cpu["postgres"] = comm_cpu(table1, "postgres") - comm_cpu(table0, "postgres")
    cpu["redis"] = comm_cpu(table1, "redis-server") - comm_cpu(table0, "redis-server")
    cpu["target"] = tree_cpu(table1, TARGET_PID) - tree_cpu(table0, TARGET_PID)
    return Outcome(
        scenario=sc,
        checks_per_s=checks / (wall1 - wall0),
        lag_p50=float(p50 or 0), lag_p99=float(p99 or 0), failed=int(failed or 0),
        cpu_per_check_ms={k: 1000 * v / max(checks, 1) for k, v in cpu.items()},
        cpu_total_s=sum(cpu.values()) / (wall1 - wall0),
        machine_busy=(machine1 - machine0) / (wall1 - wall0),
        backlog=backlog,
    )


TARGET_PID = 0


def main() -> int:
    global TARGET_PID
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--monitors", type=int, action="append", help="monitors (repeat for several scenarios)")
    parser.add_argument("--interval", type=int, action="append", help="interval in s (pairs with --monitors)")
    parser.add_argument("--duration", type=float, default=45, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=30, help="seconds before measuring")
    parser.add_argument("--probe-concurrency", type=int, default=2)
    parser.add_argument("--central-concurrency", type=int, default=2)
    parser.add_argument("--baseline-seconds", type=float, default=10)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    monitors = args.monitors or [10000, 10000, 10000]
    intervals = args.interval or [10, 8, 4]
    if len(monitors) != len(intervals):
        parser.error("give --monitors and --interval the same number of times")

    database = with_database(os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/x", "loopr_bench")
    if not database.startswith(("postgres", "postgresql")):
        parser.error("the benchmark runs on PostgreSQL: set DATABASE_URL to a postgres:// URL")
    redis_url = os.environ.get("BENCH_REDIS_URL") or "redis://127.0.0.1:6379/13"
    log_dir = ROOT / "bench" / "out"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ, "DATABASE_URL": database, "REDIS_URL": redis_url, "LOOPR_MIN_INTERVAL": "1",
        "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "loopr.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only",
    }
    port = free_port()
    hosts = [f"127.0.0.{i}" for i in range(1, 9)]
    target = subprocess.Popen([sys.executable, str(ROOT / "bench" / "target.py"), str(port), *hosts],
                              start_new_session=True)
    TARGET_PID = target.pid
    target_urls = [f"http://{host}:{port}/" for host in hosts]
    try:
        wait_port(port)
        wait_for_time_wait_to_drain()
        base_rate, base_cpu = baseline(target_urls, args.baseline_seconds)
        print(f"baseline: bare requests.get loop {base_rate:.0f} checks/s, {base_cpu * 1000:.2f} ms CPU/check",
              flush=True)
        outcomes = []
        for n, interval in zip(monitors, intervals):
            sc = Scenario(n, interval, args.duration, args.warmup, args.probe_concurrency, args.central_concurrency)
            print(f"scenario: {n} monitors every {interval} s (offered {sc.offered:.0f} checks/s) ...", flush=True)
            wait_for_time_wait_to_drain()
            outcome = run_scenario(sc, env, target_urls, log_dir)
            outcomes.append(outcome)
            print(row(outcome, base_rate), flush=True)
    finally:
        os.killpg(target.pid, signal.SIGTERM)
    table = render(outcomes, base_rate, base_cpu)
    print(table)
    if not args.no_write:
        write_benchmarks(table)
    return 0


KINDS = ["probe", "central", "dispatcher", "beat", "postgres", "redis", "target"]


def row(o: Outcome, base_rate: float) -> str:
    sc = o.scenario
    cpu = " | ".join(f"{o.cpu_per_check_ms.get(k, 0):.3f}" for k in KINDS)
    return (
        f"| {sc.monitors:,} every {sc.interval} s | {sc.offered:,.0f} | **{o.checks_per_s:,.0f}** "
        f"| {o.checks_per_s / base_rate:.2f}× | {o.lag_p50 * 1000:.0f} | {o.lag_p99 * 1000:.0f} | {cpu} "
        f"| {o.cpu_total_s:.2f} | {o.machine_busy:.2f} | {o.backlog['probe.local']} / {o.backlog['ingest']} "
        f"| {o.failed} |"
    )


def render(outcomes: list[Outcome], base_rate: float, base_cpu: float) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    head = (
        f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC at commit `{commit or '?'}` on "
        f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}; "
        f"probe worker -c {outcomes[0].scenario.probe_concurrency if outcomes else '?'}, "
        f"central worker -c {outcomes[0].scenario.central_concurrency if outcomes else '?'}, "
        f"measured {outcomes[0].scenario.duration if outcomes else '?'} s after "
        f"{outcomes[0].scenario.warmup if outcomes else '?'} s warm-up.\n\n"
        f"Baseline (same run): a bare single-process `requests.get` loop with a fresh connection: "
        f"**{base_rate:,.0f} checks/s**, {base_cpu * 1000:.2f} ms CPU per check.\n\n"
    )
    cols = " | ".join(f"CPU ms/check {k}" for k in KINDS)
    header = (
        f"| scenario | offered checks/s | end-to-end checks/s | vs baseline | lag p50 ms | lag p99 ms | {cols} "
        f"| cores busy (these processes) | cores busy (machine) | queued batches / results at the end "
        f"| failed checks |\n"
        "|" + "---|" * (11 + len(KINDS)) + "\n"
    )
    return head + header + "\n".join(row(o, base_rate) for o in outcomes) + "\n"


def write_benchmarks(table: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else ""
    start, end = "<!-- bench:latest -->", "<!-- /bench:latest -->"
    block = f"{start}\n{table}{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text + ("\n" if text else "") + "## Latest run\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
