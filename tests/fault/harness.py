"""The fault-injection stack: Loopr's real processes (every Procfile entry)
on a Redis and a PostgreSQL cluster of their own, a target that flips between
200 and 500, a signed webhook receiver, and a watch on /healthz; and the
ledger that says, from the database, what became of every due slot and every
state change in a window of time.

Settings that differ from the defaults, each for test speed only (none of
them is a timeout that decides whether work is lost or redelivered):
- LOOPR_MIN_INTERVAL=1: monitors checked every 1-2 s give hundreds of slots
  in a scenario of a few seconds;
- LOOPR_HEARTBEAT_INTERVAL=1: a region's death and return are seen in about
  3 s instead of 30 (the probe scenario would otherwise outlast the suite);
- LOOPR_WEBHOOK_ALLOW_PRIVATE=true: the receiver listens on 127.0.0.1;
- monitors' flap_threshold=1000: the target flips every few seconds on
  purpose, and flap detection would hold the very alerts the suite counts.
LOOPR_BROKER_VISIBILITY_TIMEOUT, batch expiry, the verdict grace, the
notification sweep grace and lease, the dispatch catch-up window and the
/healthz limits are all left at their defaults.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import requests

from tests.support.processes import ROOT, Processes, procfile_entries
from tests.support.services import PostgresCluster, RedisServer, free_port
from tests.support.targets import WebhookReceiver, start_target, start_webhook_receiver

PYTHON = sys.executable
DATABASE = "loopr"
REGION = "local"
# The target flips every FLIP_SECONDS: 200 for that long, then 500.
FLIP_SECONDS = 5.0
# A probe node must never need the database; it gets one that does not exist.
NO_DATABASE = "postgres://nobody@127.0.0.1:1/no_database_here"
POLLING = re.compile(r'"GET /(healthz|api/v1/regions/)|Service Unavailable: /healthz')
NOTABLE = re.compile(r"\b(WARNING|ERROR|CRITICAL|FATAL|PANIC)\b|exited|Discarding")
MONITORS = int(os.environ.get("LOOPR_FAULT_MONITORS", "60"))
ALERTING = 5


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class HealthReading:
    at: float
    status: int | None  # None: the web did not answer at all
    body: str


class HealthWatch:
    """Reads /healthz twice a second for the whole run."""

    def __init__(self, url: str):
        self.url = url
        self.readings: list[HealthReading] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="healthz-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            at = time.time()
            try:
                response = session.get(self.url, timeout=5)
                reading = HealthReading(at, response.status_code, response.text[:500])
            except requests.RequestException as exc:
                reading = HealthReading(at, None, type(exc).__name__)
            self.readings.append(reading)
            self.stop.wait(max(0.0, 0.5 - (time.time() - at)))

    def between(self, start: float, end: float) -> list[HealthReading]:
        return [r for r in list(self.readings) if start <= r.at <= end]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@dataclass
class Exit:
    name: str
    pid: int
    status: int
    at: float


@dataclass
class Stack:
    workdir: Path
    redis: RedisServer
    pg: PostgresCluster
    processes: Processes
    env: dict[str, str]
    node_token: str
    port: int
    receiver: WebhookReceiver
    target: object
    health: HealthWatch | None = None
    api: requests.Session = field(default_factory=requests.Session)
    monitor_ids: list[int] = field(default_factory=list)
    alerting_ids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    # While building, a process that exits is a failure at once; during a
    # scenario one may be down on purpose.
    fail_fast: bool = True
    # Every process that exited without being killed by the suite.
    exits: list[Exit] = field(default_factory=list)
    # Killed on purpose: not to be restarted until the scenario says so.
    held: set[str] = field(default_factory=set)
    lock: threading.RLock = field(default_factory=threading.RLock)
    supervisor: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    # Each log's size when the current test began.
    test_log_sizes: dict[Path, int] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- processes ---

    def start(self, name: str):
        env = {"DATABASE_URL": NO_DATABASE, "LOOPR_NODE_TOKEN": self.node_token} if is_probe(name) else {}
        with self.lock:
            self.held.discard(name)
            return self.processes.procfile(name, **env)

    def kill(self, name: str) -> None:
        """SIGKILL the process and its children; it stays down until start()."""
        with self.lock:
            self.held.add(name)
            self.processes.kill(name)

    def supervise(self) -> None:
        """Restart, a second later, any process that exits by itself, as a
        deployment's supervisor does (docker-compose.yml's restart policy,
        `dev.py run`), and keep a record of it: the scenario still fails,
        but what follows is measured as production would see it."""
        def run() -> None:
            while not self.stopping.wait(0.5):
                with self.lock:
                    gone = [(n, p) for n, p in self.processes.procs.items()
                            if n not in self.held and p.poll() is not None]
                for name, proc in gone:
                    self.exits.append(Exit(name, proc.pid, proc.returncode, time.time()))
                    if self.stopping.wait(1.0):
                        return
                    with self.lock:
                        if name not in self.held and self.processes.procs.get(name) is proc:
                            self.start(name)

        # Processes it starts die with this thread (PR_SET_PDEATHSIG), which
        # lives until close().
        self.supervisor = threading.Thread(target=run, name="fault-supervisor", daemon=True)
        self.supervisor.start()

    def ensure_running(self) -> list[str]:
        """Start whatever is not running (a scenario that failed half-way
        must not spoil the next); returns what had to be started."""
        if not self.redis.running():
            self.redis.start()
        if not self.pg.running():
            self.pg.start()
        restarted = [name for name in self.names if not self.processes.running(name)]
        for name in restarted:
            self.start(name)
        return restarted

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.processes.procs.items()}

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.base}/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def region_live(self) -> bool:
        try:
            regions = self.api.get(f"{self.base}/api/v1/regions/", timeout=5).json()
        except (requests.RequestException, ValueError):
            return False
        if isinstance(regions, dict):  # paginated
            regions = regions.get("results", [])
        return any(r.get("name") == REGION and r.get("live") for r in regions)

    # --- logs ---

    def log_sizes(self) -> dict[Path, int]:
        return {p: p.stat().st_size for p in self.log_paths()}

    def log_paths(self) -> list[Path]:
        return sorted(self.workdir.glob("logs/*.log")) + [self.redis.log_path, self.pg.log_path]

    def logs_since(self, sizes: dict[Path, int], tail: int = 25, notable: int = 60) -> str:
        """Each log's part since `sizes`: its warnings and errors (one line
        each, not their tracebacks), then its last lines."""
        out = []
        for path in self.log_paths():
            with open(path, "rb") as f:
                f.seek(sizes.get(path, 0))
                text = f.read().decode(errors="replace")
            # Not the harness's own polling (access log lines, the 503s it saw).
            lines = [line for line in text.splitlines() if not POLLING.search(line)]
            marked = [line for line in lines if NOTABLE.search(line)]
            out.append(f"===== {path.name}: {len(marked)} warnings/errors in this test, the first {notable} =====\n"
                       + "\n".join(marked[:notable])
                       + f"\n----- {path.name}: last {tail} lines -----\n" + "\n".join(lines[-tail:]))
        return "\n".join(out)

    def log_since_test(self, name: str) -> str:
        """Process `name`'s log since the current test began."""
        path = self.workdir / "logs" / f"{name}.log"
        with open(path, "rb") as f:
            f.seek(self.test_log_sizes.get(path, 0))
            return f.read().decode(errors="replace")

    def describe(self) -> str:
        """What /healthz and the regions say now, for a timeout's message."""
        try:
            health = requests.get(f"{self.base}/healthz?verbose=1", timeout=5).text
        except requests.RequestException as exc:
            health = repr(exc)
        try:
            regions = self.api.get(f"{self.base}/api/v1/regions/", timeout=5).text
        except requests.RequestException as exc:
            regions = repr(exc)
        dead = [n for n in self.names if not self.processes.running(n)]
        return f"/healthz: {health}\nregions: {regions}\nnot running: {dead or 'none'}"

    def close(self) -> None:
        try:
            self.stopping.set()
            if self.supervisor is not None:
                self.supervisor.join(timeout=10)
            if self.health is not None:
                self.health.close()
            self.processes.stop_all()
        finally:
            try:
                self.receiver.close()
                self.target.server.shutdown()
                self.target.server.server_close()
            finally:
                try:
                    self.redis.close()
                finally:
                    self.pg.close()


def is_probe(name: str) -> bool:
    return name.startswith("probe")


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def build_stack(workdir: Path) -> Stack:
    """Everything up and checking, in `workdir`; the caller must close() it,
    whatever happens (on failure here, everything started is stopped)."""
    workdir.chmod(0o755)  # the `postgres` user keeps its cluster under it
    (workdir / "logs").mkdir()
    redis = pg = None
    receiver = start_webhook_receiver()
    target = start_target()
    try:
        redis = RedisServer(workdir)
        pg = PostgresCluster(workdir / "pg")
        pg.create_database(DATABASE)
        port = free_port()
        env = {
            "DATABASE_URL": pg.url(DATABASE),
            "REDIS_URL": redis.url,
            "LOOPR_VAR_DIR": str(workdir / "var"),
            "LOOPR_MIN_INTERVAL": "1",
            "LOOPR_HEARTBEAT_INTERVAL": "1",
            "LOOPR_WEBHOOK_ALLOW_PRIVATE": "true",
            "LOOPR_ADMIN_PASSWORD": "fault-admin-password",
            "LOOPR_BIND": "127.0.0.1",
            "PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
        full_env = {**os.environ, **env}
        manage(full_env, "migrate", "--no-input")
        manage(full_env, "ensure_admin")
        token = manage(full_env, "create_token", "admin").strip().splitlines()[-1]
        node_token = manage(full_env, "create_node_token", REGION, "--label", "fault suite").strip().splitlines()[-1]
    except BaseException:
        for server in (redis, pg):
            if server is not None:
                server.close()
        receiver.close()
        target.server.shutdown()
        raise
    stack = Stack(workdir=workdir, redis=redis, pg=pg, env=env, node_token=node_token,
                  processes=Processes(workdir / "logs", env, die_with_parent=True), port=port,
                  receiver=receiver, target=target, names=list(procfile_entries()))
    stack.api.headers["Authorization"] = f"Token {token}"
    try:
        for name in stack.names:
            stack.start(name)
        wait(stack.healthy, 120, "/healthz to answer 200 after start-up", stack)
        stack.health = HealthWatch(f"{stack.base}/healthz")
        create_monitors(stack)
        wait(lambda: stack_checked_everything(stack), 120, "a result for every monitor", stack)
        stack.fail_fast = False
        stack.supervise()
    except BaseException:
        stack.close()
        raise
    return stack


def wait(predicate, timeout: float, what: str, stack: Stack | None = None, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            state = f"\n{stack.describe()}" if stack is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{state}")
        if stack is not None and stack.fail_fast:
            dead = [n for n in stack.names if not stack.processes.running(n)]
            if dead:
                raise AssertionError(f"waiting for {what}: {', '.join(dead)} exited")
        time.sleep(interval)


def create_monitors(stack: Stack) -> None:
    # Every monitor on the flipping target, each on a path of its own.
    stack.target.behave(status=200, flip_every=FLIP_SECONDS, flip_status=500)
    response = stack.api.post(f"{stack.base}/api/v1/channels/", json={
        "name": "fault receiver", "kind": "webhook", "target": stack.receiver.url}, timeout=30)
    assert response.status_code == 201, response.text
    channel = response.json()
    stack.receiver.secret = channel["secret"]
    for n in range(ALERTING + MONITORS):
        alerting = n < ALERTING
        response = stack.api.post(f"{stack.base}/api/v1/monitors/", json={
            "name": f"fault {n}", "url": stack.target.url(f"/m/{n}"),
            # The alerting ones every second, so each flip is confirmed
            # (retries=1: two failures) within its 5 s.
            "interval": 1 if alerting else 2, "timeout": 0.8 if alerting else 1.5,
            "regions": [REGION], "retries": 1, "flap_threshold": 1000,
            "channels": [channel["id"]] if alerting else [],
        }, timeout=30)
        assert response.status_code == 201, response.text
        stack.monitor_ids.append(response.json()["id"])
        if alerting:
            stack.alerting_ids.append(response.json()["id"])


def stack_checked_everything(stack: Stack) -> bool:
    with stack.pg.connect(DATABASE) as conn:
        (count,) = conn.execute(
            "SELECT count(DISTINCT monitor_id) FROM monitors_checkresult WHERE monitor_id = ANY(%s) "
            "AND error_kind <> 'missed'", (stack.monitor_ids,)).fetchone()
    return count == len(stack.monitor_ids)


# --- the ledger ------------------------------------------------------------------------


def micros(at: datetime) -> int:
    return round(at.timestamp() * 1_000_000)


@dataclass
class SlotLedger:
    """What became of every due (monitor, region, slot) of a window."""

    due: int = 0
    stored: int = 0  # a check ran and its result is there
    missed: int = 0  # an explicit missed record
    lost: list[tuple[int, datetime]] = field(default_factory=list)  # neither
    # Rows that are not one per due slot: a second row for a slot, a slot
    # off the monitor's grid, or another region than the monitor's own.
    extra: list[str] = field(default_factory=list)
    # Missed records that break their own rules (ok must be null, a reason
    # given), or that lie where nothing went wrong.
    bad_missed: list[str] = field(default_factory=list)
    missed_reasons: dict[str, int] = field(default_factory=dict)
    # Monitors with no real result after the fault was repaired.
    not_resumed: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return (f"due {self.due}, stored {self.stored}, missed {self.missed} {self.missed_reasons}, "
                f"lost {len(self.lost)}, extra {len(self.extra)}")


def slot_ledger(stack: Stack, start: datetime, end: datetime, missed_from: datetime,
                resumed_after: datetime) -> SlotLedger:
    """Every due slot in [start, end] of every monitor, from the database.
    Missed records are accepted from `missed_from` on; before it nothing
    went wrong, so every slot must have a real result. A missed record may
    stand for a run of slots (`missed_until`, where the schema has it)."""
    ledger = SlotLedger()
    with stack.pg.connect(DATABASE) as conn:
        (region_id,) = conn.execute("SELECT id FROM workers_region WHERE name = %s", (REGION,)).fetchone()
        monitors = conn.execute("SELECT id, interval, next_check_at FROM monitors_monitor WHERE id = ANY(%s)",
                                (stack.monitor_ids,)).fetchall()
        runs = conn.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'monitors_checkresult' "
                            "AND column_name = 'missed_until'").fetchone() is not None
        until = "missed_until" if runs else "NULL::timestamptz"
        rows = conn.execute(
            f"SELECT monitor_id, region_id, scheduled_at, {until}, error_kind, ok, missed_reason "
            "FROM monitors_checkresult WHERE monitor_id = ANY(%s) AND scheduled_at <= %s "
            f"AND (scheduled_at >= %s OR {until} >= %s)",
            (stack.monitor_ids, end, start, start)).fetchall()
    grid = {}
    due: set[tuple[int, int]] = set()
    for monitor_id, interval, anchor in monitors:
        # The grid: next_check_at moves by whole intervals (slot + k × interval).
        step, anchor_us = interval * 1_000_000, micros(anchor)
        grid[monitor_id] = (step, anchor_us)
        first = anchor_us + -((anchor_us - micros(start)) // step) * step
        for slot in range(first, micros(end) + 1, step):
            due.add((monitor_id, slot))
    # Each row, on each slot it stands for.
    by_slot: dict[tuple[int, int], list[tuple]] = defaultdict(list)
    for monitor_id, row_region, scheduled_at, missed_until, kind, ok, reason in rows:
        step, anchor_us = grid[monitor_id]
        first, last = micros(scheduled_at), micros(missed_until or scheduled_at)
        if (first - anchor_us) % step or (last - first) % step:
            ledger.extra.append(f"monitor {monitor_id} {scheduled_at:%H:%M:%S.%f}: off its grid ({kind})")
            continue
        for slot in range(max(first, first + -((first - micros(start)) // step) * step), last + 1, step):
            if slot <= micros(end):
                by_slot[(monitor_id, slot)].append((row_region, kind, ok, reason))
    resumed: set[int] = set()
    for key, found in by_slot.items():
        monitor_id, slot = key
        at = datetime.fromtimestamp(slot / 1e6, timezone.utc)
        own = [f for f in found if f[0] == region_id]
        ledger.extra.extend(f"monitor {monitor_id} {at:%H:%M:%S.%f}: region id {f[0]}" for f in found
                            if f[0] != region_id)
        if len(own) > 1:
            ledger.extra.append(f"monitor {monitor_id} {at:%H:%M:%S.%f}: {len(own)} rows "
                                f"({', '.join(f[1] for f in own)})")
        if not own:
            continue
        _, kind, ok, reason = own[0]
        if kind == "missed":
            ledger.missed += 1
            ledger.missed_reasons[reason] = ledger.missed_reasons.get(reason, 0) + 1
            if ok is not None or not reason:
                ledger.bad_missed.append(f"monitor {monitor_id} {at:%H:%M:%S.%f}: ok={ok} reason={reason!r}")
            elif at < missed_from:
                ledger.bad_missed.append(f"monitor {monitor_id} {at:%H:%M:%S.%f}: missed ({reason}) before "
                                         f"anything went wrong ({missed_from:%H:%M:%S})")
        else:
            ledger.stored += 1
            if at > resumed_after:
                resumed.add(monitor_id)
    ledger.due = len(due)
    ledger.lost = sorted((m, datetime.fromtimestamp(s / 1e6, timezone.utc)) for m, s in due
                         if not any(f[0] == region_id for f in by_slot.get((m, s), [])))
    ledger.not_resumed = sorted(set(stack.monitor_ids) - resumed)
    return ledger


@dataclass
class AlertLedger:
    """Every state change of the alerting monitors in a window, and what
    the receiver got for it."""

    changes: int = 0
    expected: int = 0  # changes that must be told (to or from down)
    delivered: int = 0
    # Changes with no notification, or whose notification never arrived.
    untold: list[str] = field(default_factory=list)
    # One event under two ids, in the outbox or at the receiver.
    two_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"state changes {self.changes}, to tell {self.expected}, delivered {self.delivered}, "
                f"untold {len(self.untold)}, under two ids {len(self.two_ids)}")


def alert_ledger(stack: Stack, start: datetime, end: datetime) -> AlertLedger:
    ledger = AlertLedger()
    with stack.pg.connect(DATABASE) as conn:
        changes = conn.execute(
            "SELECT monitor_id, incident_id, old, new, at FROM monitors_statuschange "
            "WHERE monitor_id = ANY(%s) AND at BETWEEN %s AND %s ORDER BY at",
            (stack.alerting_ids, start, end)).fetchall()
        outbox = conn.execute(
            "SELECT id::text, monitor_id, incident_id, event FROM notifications_notification "
            "WHERE monitor_id = ANY(%s)", (stack.alerting_ids,)).fetchall()
    by_event: dict[tuple, list[str]] = defaultdict(list)
    for notification_id, monitor_id, incident_id, event in outbox:
        by_event[(monitor_id, event, incident_id)].append(notification_id)
    received: dict[tuple, set[str]] = defaultdict(set)
    for delivery in stack.receiver.received():
        data = delivery.payload.get("data", {})
        key = ((data.get("monitor") or {}).get("id"), data.get("event"), (data.get("incident") or {}).get("id"))
        received[key].add(delivery.webhook_id)
    received_ids = {d.webhook_id for d in stack.receiver.received()}
    ledger.changes = len(changes)
    for monitor_id, incident_id, old, new, at in changes:
        # Down is told, and so is the way back from it; pending -> up is not.
        event = "down" if new == "down" else "up" if old == "down" else None
        if event is None:
            continue
        ledger.expected += 1
        key = (monitor_id, event, incident_id)
        ids = by_event.get(key, [])
        if not ids:
            ledger.untold.append(f"monitor {monitor_id} {old}->{new} at {at:%H:%M:%S}: no notification")
        elif not set(ids) & received_ids:
            ledger.untold.append(f"monitor {monitor_id} {old}->{new} at {at:%H:%M:%S}: notification {ids[0]} "
                                 "not received")
        else:
            ledger.delivered += 1
    for key, ids in by_event.items():
        if len(ids) > 1:
            ledger.two_ids.append(f"outbox {key}: {sorted(ids)}")
    for key, ids in received.items():
        if len(ids) > 1:
            ledger.two_ids.append(f"receiver {key}: {sorted(ids)}")
    return ledger
