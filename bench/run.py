"""Loopr's benchmark harness: the real system (PostgreSQL, Redis, beat, dispatcher,
central worker, probe worker on gevent) against a local target that answers at once,
after a delay, or never, with a bare `requests.get` loop measured just before
each scenario as its baseline.

    python3 dev.py bench                              # the default scenarios
    python3 dev.py bench --scenario slow --scenario hang --no-write
    python3 dev.py bench --custom 2000,2,0,0,5 --duration 20 --no-write
    python3 dev.py bench --scenario big --profile     # py-spy of probe and central

Scenarios (`--scenario`, repeatable): instant, saturated, slow, hang, big,
idle, waiting (see SCENARIOS); `--custom MONITORS,INTERVAL,DELAY_MS,HANG_FRACTION,TIMEOUT`
adds one of your own.

What it does to tell the truth at scale: monitors are created already `up`
(no pending->up change per first check) and only then, once the probe node
is live, given their first slots, spread over one interval from a few
seconds ahead; the warm-up lasts at least one interval plus ten seconds; lag
is measured to the check's start (`checked_at`) and to the row being stored
(a `bench_stored_at` column with a clock_timestamp() default that the bench
adds to its own database only); the machine's load average, the queues at
both ends of the window and the same-run baseline go with every row.

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


def process_cpu(pid: int) -> float:
    """CPU seconds of one process so far (a PostgreSQL backend, say)."""
    stat = _stat(pid)
    return stat[2] if stat else 0.0


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
    name: str
    monitors: int
    interval: int
    delay_ms: int = 0  # every healthy target answers after this long
    hang_fraction: float = 0.0  # this share of monitors point at a target that never answers
    timeout: float = 5.0
    duration: float = 45.0
    warmup: float = 30.0
    probe_concurrency: int = 100
    probe_processes: int = 2
    central_concurrency: int = 2

    @property
    def offered(self) -> float:
        return self.monitors / self.interval

    @property
    def hanging(self) -> int:
        return round(self.monitors * self.hang_fraction)

    def describe(self) -> str:
        if not self.monitors:
            return "idle node (no monitors)"
        target = f"{self.delay_ms} ms target" if self.delay_ms else "instant target"
        if self.hang_fraction >= 1:
            target = "every target hangs"
        elif self.hang_fraction:
            target += f", {self.hang_fraction:.0%} hanging"
        return f"{self.name}: {self.monitors:,} every {self.interval} s, {target}, timeout {self.timeout:g} s"


SCENARIOS = {
    # The issue-10 goals, each as one scenario.
    "instant": dict(monitors=10000, interval=10),
    "saturated": dict(monitors=10000, interval=3),
    "slow": dict(monitors=10000, interval=10, delay_ms=500),
    "hang": dict(monitors=10000, interval=10, hang_fraction=0.1, timeout=5),
    "big": dict(monitors=100000, interval=100),
    "idle": dict(monitors=0, interval=10, duration=30, warmup=10),
    "waiting": dict(monitors=1000, interval=60, hang_fraction=1.0, timeout=30),
}


@dataclass
class Outcome:
    scenario: Scenario
    base_rate: float
    base_cpu_ms: float
    stored_per_s: float
    healthy_stored_per_s: float
    start_lag: tuple[float, float]  # p50, p99 seconds (healthy checks)
    stored_lag: tuple[float, float]
    failed: int
    missed: int
    cpu_per_check_ms: dict[str, float]
    cores: dict[str, float]
    machine_busy: float
    load: tuple[str, str]  # load averages at the window's start and end
    backlog: tuple[dict[str, int], dict[str, int]]
    profiles: dict[str, str]


def fix_first_slots(cursor, sc: Scenario) -> None:
    """Slots spread evenly over one interval from a few seconds ahead, set
    in one statement after every monitor exists. In floating point, from the
    statement's start: in integers, from each row's own clock, a second's
    monitors all fell due within the few hundred ms the UPDATE took, and
    every second's checks came as one burst."""
    cursor.execute(
        """WITH ranked AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM monitors_monitor)
           UPDATE monitors_monitor m
              SET next_check_at = statement_timestamp() + interval '3 seconds'
                                  + make_interval(secs => %s::float8 * ranked.k / %s)
             FROM ranked WHERE m.id = ranked.id""",
        [sc.interval, max(sc.monitors, 1)],
    )


def create_monitors(sc: Scenario, target_base: list[str]) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from monitors.models import Monitor

    owner = get_user_model().objects.create(username="bench")
    parked = timezone.now() + dt.timedelta(days=1)  # no slot until fix_first_slots
    every = round(1 / sc.hang_fraction) if sc.hang_fraction else 0
    path = f"delay/{sc.delay_ms}" if sc.delay_ms else ""
    batch: list = []
    for i in range(sc.monitors):
        hangs = every and i % every == 0
        batch.append(Monitor(
            owner=owner, name=f"bench {i}", url=target_base[i % len(target_base)] + ("hang" if hangs else path),
            interval=sc.interval, timeout=sc.timeout, next_check_at=parked,
            # Created up: the window measures steady checks, not first ones.
            status="up", health="up", alerted_health="up",
        ))
        if len(batch) == 5000:
            Monitor.objects.bulk_create(batch)
            batch = []
    Monitor.objects.bulk_create(batch)


def wait_for_live_node(cursor, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cursor.execute("SELECT count(*) FROM workers_workernode")
        if cursor.fetchone()[0]:
            return
        time.sleep(0.5)
    raise RuntimeError("no probe node reported within a minute")


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", "100", "--subprocesses", "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise_profile(raw: Path, top: int = 15) -> str:
    """Where a process spent its samples, from py-spy's raw output: functions
    by inclusive share (leaving out the frames nearly every stack shares, the
    worker's own main loop) and by self share."""
    import collections

    if not raw.exists():
        return "(no profile)"
    inclusive: collections.Counter = collections.Counter()
    leaf: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        total += n
        names = [frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1].rstrip(")") for frame in frames]
        for name in set(names):
            inclusive[name] += n
        leaf[names[-1]] += n
    if not total:
        return "(no samples)"
    shown = [(name, c) for name, c in inclusive.most_common() if c < 0.9 * total][:top]
    lines = [f"{total} samples; inclusive:"] + [f"  {100 * c / total:5.1f}% {name}" for name, c in shown]
    lines += ["self:"] + [f"  {100 * c / total:5.1f}% {name}" for name, c in leaf.most_common(top)]
    return "\n".join(lines)


def stats(cursor, since: int, window: tuple) -> tuple:
    cursor.execute(
        """SELECT count(*),
                  count(*) FILTER (WHERE m.url NOT LIKE '%%/hang'),
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.checked_at - r.scheduled_at))
                      FILTER (WHERE m.url NOT LIKE '%%/hang' AND r.ok IS NOT NULL),
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM r.checked_at - r.scheduled_at))
                      FILTER (WHERE m.url NOT LIKE '%%/hang' AND r.ok IS NOT NULL),
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.bench_stored_at - r.scheduled_at))
                      FILTER (WHERE m.url NOT LIKE '%%/hang'),
                  percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM r.bench_stored_at - r.scheduled_at))
                      FILTER (WHERE m.url NOT LIKE '%%/hang'),
                  count(*) FILTER (WHERE r.ok = false AND m.url NOT LIKE '%%/hang'),
                  count(*) FILTER (WHERE r.ok IS NULL)
             FROM monitors_checkresult r JOIN monitors_monitor m ON m.id = r.monitor_id
            WHERE r.id > %s AND r.bench_stored_at >= %s AND r.bench_stored_at < %s""",
        [since, *window],
    )
    return cursor.fetchone()


def run_scenario(sc: Scenario, env: dict, target_base: list[str], log_dir: Path, base: tuple[float, float],
                 want_profile: bool) -> Outcome:
    import django
    from django.db import connection

    recreate_database(env["DATABASE_URL"])
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    import redis

    broker = redis.Redis.from_url(env["REDIS_URL"])
    broker.flushdb()

    os.environ.update(env)
    from django.apps import apps

    if not apps.ready:
        django.setup()
    connection.close()
    from workers.models import NodeToken

    with connection.cursor() as cursor:
        # When each row reached the table: the bench's own column, in its own database.
        cursor.execute("ALTER TABLE monitors_checkresult "
                       "ADD COLUMN bench_stored_at timestamptz NOT NULL DEFAULT clock_timestamp()")
    _, node_token = NodeToken.issue("local", label="bench")
    create_monitors(sc, target_base)
    connection.close()

    celery = str(BIN / "celery")
    procs: dict[str, subprocess.Popen] = {}

    def start_proc(kind: str, args: list[str], **extra: str) -> None:
        log = open(log_dir / f"{sc.name}-{kind}.log", "wb")
        procs[kind] = subprocess.Popen(args, cwd=ROOT, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)

    start_proc("central", [celery, "-A", "loopr", "worker", "-Q", "central,ingest,heartbeat", "-n", "central@%h",
                           "-c", str(sc.central_concurrency), "-l", "WARNING"])
    # The Procfile's dispatcher: the dispatch tick's own queue and process.
    start_proc("dispatcher", [celery, "-A", "loopr", "worker", "-Q", "dispatch", "-n", "dispatch@%h",
                              "--pool", "solo", "-l", "WARNING"])
    # The Procfile's probe entry (the gevent pool), one process per core as a
    # node on this machine would run it.
    for n in range(sc.probe_processes):
        start_proc(f"probe{n}" if n else "probe",
                   [celery, "-A", "loopr", "worker", "--pool", "gevent", "-Q", "probe.local", "-n", f"probe{n}@%h",
                    "-c", str(sc.probe_concurrency), "-l", "WARNING"],
                   DATABASE_URL="postgres://nobody@127.0.0.1:1/none", LOOPR_NODE_TOKEN=node_token)
    profiles: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            wait_for_live_node(cursor)
            fix_first_slots(cursor, sc)
        start_proc("beat", [celery, "-A", "loopr", "beat", "-l", "WARNING", "-s", str(log_dir / "beat-schedule")])
        time.sleep(3 + max(sc.warmup, sc.interval + 10 if sc.monitors else 0))
        spies = {}
        if want_profile:
            spies = {kind: profile(procs[kind].pid, sc.duration, log_dir / f"{sc.name}-{kind}.pyspy")
                     for kind in ("probe", "central")}
        with connection.cursor() as cursor:
            cursor.execute("SELECT coalesce(max(id), 0), clock_timestamp() FROM monitors_checkresult")
            id0, db0 = cursor.fetchone()
            queued0 = {q: broker.llen(q) for q in ("probe.local", "ingest")}
            load0 = " ".join(f"{v:.2f}" for v in os.getloadavg())
            table0, wall0, machine0 = process_table(), time.monotonic(), machine_busy_seconds()
            time.sleep(sc.duration)
            cursor.execute("SELECT clock_timestamp()")
            db1 = cursor.fetchone()[0]
            table1, wall1, machine1 = process_table(), time.monotonic(), machine_busy_seconds()
            load1 = " ".join(f"{v:.2f}" for v in os.getloadavg())
            queued1 = {q: broker.llen(q) for q in ("probe.local", "ingest")}
            # Rows stored in the window; wait for stragglers of the window's
            # checks to land before reading (the window is by storage time).
            total, healthy, s50, s99, t50, t99, failed, missed = stats(cursor, id0, (db0, db1))
        connection.close()
        for kind, spy in spies.items():
            try:
                spy.wait(120)  # py-spy writes its file after the window; slowly on a loaded machine
            except subprocess.TimeoutExpired:
                spy.kill()
            profiles[kind] = summarise_profile(log_dir / f"{sc.name}-{kind}.pyspy")
    finally:
        for proc in procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    window = wall1 - wall0
    checks = total
    cpu = {kind: tree_cpu(table1, p.pid) - tree_cpu(table0, p.pid) for kind, p in procs.items()}
    for n in range(1, sc.probe_processes):
        cpu["probe"] += cpu.pop(f"probe{n}")
    # Backends that exit in the window take their CPU time with them: a floor, not a total.
    cpu["postgres"] = max(0.0, comm_cpu(table1, "postgres") - comm_cpu(table0, "postgres"))
    cpu["redis"] = comm_cpu(table1, "redis-server") - comm_cpu(table0, "redis-server")
    cpu["target"] = tree_cpu(table1, TARGET_PID) - tree_cpu(table0, TARGET_PID)
    return Outcome(
        scenario=sc, base_rate=base[0], base_cpu_ms=base[1] * 1000,
        stored_per_s=checks / window, healthy_stored_per_s=healthy / window,
        start_lag=(float(s50 or 0), float(s99 or 0)), stored_lag=(float(t50 or 0), float(t99 or 0)),
        failed=int(failed or 0), missed=int(missed or 0),
        cpu_per_check_ms={k: 1000 * v / max(checks, 1) for k, v in cpu.items()},
        cores={k: v / window for k, v in cpu.items()},
        machine_busy=(machine1 - machine0) / window,
        load=(load0, load1), backlog=(queued0, queued1), profiles=profiles,
    )


TARGET_PID = 0


def parse_custom(text: str) -> Scenario:
    monitors, interval, delay, hang, timeout = text.split(",")
    return Scenario(f"custom-{monitors}x{interval}", int(monitors), int(interval), int(delay), float(hang),
                    float(timeout))


def main() -> int:
    global TARGET_PID
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="a named scenario (repeatable)")
    parser.add_argument("--custom", action="append", default=[], metavar="M,I,DELAY_MS,HANG,TIMEOUT",
                        help="monitors, interval s, delay ms, hanging fraction, timeout s (repeatable)")
    parser.add_argument("--duration", type=float, help="measured seconds per scenario (default: the scenario's, 45)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring; at least one interval + 10 is kept")
    parser.add_argument("--probe-concurrency", type=int, default=100, help="batches a probe process holds at once")
    parser.add_argument("--probe-processes", type=int, default=2, help="probe worker processes (one per core)")
    parser.add_argument("--central-concurrency", type=int, default=2)
    parser.add_argument("--baseline-seconds", type=float, default=8)
    parser.add_argument("--profile", action="store_true", help="py-spy the probe and central workers in the window")
    parser.add_argument("--write", action="store_true", help="replace the latest-run table in BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help=argparse.SUPPRESS)  # the old default
    args = parser.parse_args()
    scenarios = [Scenario(name, **SCENARIOS[name]) for name in (args.scenario or [])]
    scenarios += [parse_custom(c) for c in args.custom]
    if not scenarios:
        scenarios = [Scenario(name, **SCENARIOS[name]) for name in ("instant", "slow", "hang", "saturated")]
    for sc in scenarios:
        sc.duration = args.duration or sc.duration
        sc.warmup = args.warmup if args.warmup is not None else sc.warmup
        sc.probe_concurrency, sc.central_concurrency = args.probe_concurrency, args.central_concurrency
        sc.probe_processes = args.probe_processes

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
    target_base = [f"http://{host}:{port}/" for host in hosts]
    outcomes = []
    try:
        wait_port(port)
        for sc in scenarios:
            wait_for_time_wait_to_drain()
            base = baseline(target_base, args.baseline_seconds)
            print(f"{sc.describe()} (offered {sc.offered:,.0f} checks/s; baseline {base[0]:,.0f} checks/s, "
                  f"{base[1] * 1000:.2f} ms CPU/check) ...", flush=True)
            wait_for_time_wait_to_drain()
            outcome = run_scenario(sc, env, target_base, log_dir, base, args.profile)
            outcomes.append(outcome)
            print(header() + row(outcome), flush=True)
            for kind, text in outcome.profiles.items():
                print(f"py-spy, {kind} (inclusive):\n{text}", flush=True)
    finally:
        os.killpg(target.pid, signal.SIGTERM)
    table = render(outcomes)
    print(table)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    (log_dir / f"run-{stamp}.md").write_text(table)
    if args.write:
        write_benchmarks(table)
    return 0


KINDS = ["probe", "central", "dispatcher", "beat", "postgres", "redis", "target"]


def header() -> str:
    return (
        "| scenario | offered/s | stored/s | × bare loop | healthy stored / offered | lag to start p50 / p99 ms "
        "| lag to stored p50 / p99 ms | probe CPU ms/check (× bare loop) | central | dispatcher | beat | postgres "
        "| redis | target | probe cores | machine cores | load 1/5/15 min, start → end | queued batches / results, start → end "
        "| bare loop checks/s, CPU ms | failed / missed |\n"
        + "|---" * 20 + "|\n"
    )


def row(o: Outcome) -> str:
    sc, cpu = o.scenario, o.cpu_per_check_ms
    healthy_offered = (sc.monitors - sc.hanging) / sc.interval
    healthy = f"{o.healthy_stored_per_s / healthy_offered:.3f}" if healthy_offered else "—"
    probe = f"{cpu['probe']:.3f} ({cpu['probe'] / o.base_cpu_ms:.2f}×)" if o.stored_per_s else "—"
    others = " | ".join(f"{cpu.get(k, 0):.3f}" if o.stored_per_s else "—" for k in KINDS[1:])
    q0, q1 = o.backlog
    return (
        f"| {sc.describe()} | {sc.offered:,.0f} | **{o.stored_per_s:,.0f}** | {o.stored_per_s / o.base_rate:.2f}× "
        f"| {healthy} | {o.start_lag[0] * 1000:.0f} / {o.start_lag[1] * 1000:.0f} "
        f"| {o.stored_lag[0] * 1000:.0f} / {o.stored_lag[1] * 1000:.0f} | {probe} | {others} "
        f"| {o.cores['probe']:.3f} | {o.machine_busy:.2f} | {o.load[0]} → {o.load[1]} "
        f"| {q0['probe.local']} / {q0['ingest']} → {q1['probe.local']} / {q1['ingest']} "
        f"| {o.base_rate:,.0f}, {o.base_cpu_ms:.2f} | {o.failed} / {o.missed} |\n"
    )


def render(outcomes: list[Outcome]) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    first = outcomes[0].scenario if outcomes else None
    head = (
        f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC at commit `{commit or '?'}` on "
        f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}; "
        f"{first.probe_processes if first else '?'} probe worker processes (--pool gevent -c "
        f"{first.probe_concurrency if first else '?'}), "
        f"central worker -c {first.central_concurrency if first else '?'}; each scenario measured "
        f"{first.duration if first else '?'} s after a warm-up of at least one interval + 10 s, its bare "
        f"`requests.get` loop run just before it.\n\n"
    )
    return head + header() + "".join(row(o) for o in outcomes)


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
