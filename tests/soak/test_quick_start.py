"""The quick start, run as a new user runs it: `python3 dev.py run` on a fresh
var/ with nothing set (SQLite, the embedded broker), left running under load.

These take minutes (marker `soak`: `python3 dev.py test -m soak`);
LOOPR_SOAK_SECONDS makes the long one longer, LOOPR_SOAK_MONITORS changes its
200 monitors.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
import requests

from tests.support.processes import ROOT, wait_for

pytestmark = [pytest.mark.soak, pytest.mark.e2e]

SOAK_SECONDS = float(os.environ.get("LOOPR_SOAK_SECONDS", "300"))
SOAK_MONITORS = int(os.environ.get("LOOPR_SOAK_MONITORS", "200"))
PROCESSES = ("broker", "web", "beat", "dispatcher", "worker", "probe")
# Log lines a healthy run never prints (celery's and ours, any process).
TROUBLE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|exited unexpectedly")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuickStart:
    """`dev.py run` in a fresh directory of its own, and what it wrote."""

    def __init__(self, **env: str):
        # Short: the broker's Unix socket lives under it.
        self.dir = Path(tempfile.mkdtemp(prefix="loopr-qs-"))
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
        self.env.update(LOOPR_VAR_DIR=str(self.dir / "var"), PORT=str(self.port), LOOPR_ADMIN_PASSWORD="soak-admin-pw",
                        PYTHONUNBUFFERED="1", **env)
        self.log_path = self.dir / "run.log"
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "dev.py"), "run"], cwd=ROOT, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(self._healthy, timeout=180, interval=0.5, message="the quick start's /healthz")

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, f"dev.py run exited:\n{self.tail()}"
        try:
            return requests.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def pids(self) -> dict[str, int]:
        """The latest pid dev.py started each process with."""
        return {name: int(pid) for name, pid in re.findall(r"dev\.py +\| started (\w+) \(pid (\d+)\)", self.log())}

    def api(self) -> requests.Session:
        token = subprocess.run([str(Path(sys.executable).with_name("python")), "manage.py", "create_token", "admin"],
                               cwd=ROOT, env=self.env, capture_output=True, text=True, check=True).stdout
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token.strip().splitlines()[-1]}"
        return session

    def create_monitors(self, count: int, url: str) -> list[int]:
        api = self.api()
        ids = []
        for n in range(count):
            response = api.post(f"{self.base}/api/v1/monitors/",
                                json={"name": f"soak {n}", "url": url, "interval": 1, "timeout": 0.8}, timeout=30)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        return ids

    def slots(self, since: datetime) -> dict[int, list[datetime]]:
        """Each monitor's stored slots from `since`, read from the SQLite file."""
        db = sqlite3.connect(f"file:{self.dir / 'var' / 'loopr.sqlite3'}?mode=ro", uri=True, timeout=30)
        try:
            rows = db.execute("SELECT monitor_id, scheduled_at FROM monitors_checkresult WHERE scheduled_at >= ? "
                              "ORDER BY monitor_id, scheduled_at", (since.strftime("%Y-%m-%d %H:%M:%S"),)).fetchall()
        finally:
            db.close()
        slots: dict[int, list[datetime]] = defaultdict(list)
        for monitor_id, scheduled_at in rows:
            slots[monitor_id].append(datetime.fromisoformat(scheduled_at))
        return slots

    def stop(self, timeout: float = 60) -> float:
        """Ctrl-C, as a user stops it; returns how long the stop took."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        os.kill(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"dev.py run did not stop within {timeout} s:\n{self.tail()}")
        return time.monotonic() - started

    def kill_everything(self) -> None:
        for pid in [self.proc.pid if self.proc else None, *self.pids().values()]:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError, TypeError):
                    pass


@pytest.fixture
def quick_start(request):
    made: list[QuickStart] = []

    def make(**env: str) -> QuickStart:
        made.append(QuickStart(**env))
        return made[-1]

    yield make
    for qs in made:
        try:
            qs.stop()
        except AssertionError:
            pass
        finally:
            qs.kill_everything()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"===== dev.py run ({qs.dir}), last 150 lines =====\n{qs.tail(150)}")
        shutil.rmtree(qs.dir, ignore_errors=True)


def gaps(slots: dict[int, list[datetime]], ids: list[int], start: datetime, end: datetime) -> dict[int, list]:
    """Per monitor, every place between start and end where a slot is missing."""
    found = {}
    for monitor_id in ids:
        own = [s for s in slots.get(monitor_id, []) if start <= s <= end]
        bounds = [start, *own, end]
        missing = [(a.time(), b.time()) for a, b in zip(bounds, bounds[1:]) if (b - a).total_seconds() > 1.0]
        if missing:
            found[monitor_id] = missing
    return found


def test_the_quick_start_checks_200_monitors_every_second_for_minutes_without_a_gap_or_an_error(
    quick_start, target
):
    qs = quick_start(LOOPR_MIN_INTERVAL="1")
    qs.start()
    ids = qs.create_monitors(SOAK_MONITORS, target.url("/"))
    # Warm up for a few intervals: the first check of each monitor is
    # pending -> up, and the monitors were created over a few seconds.
    time.sleep(10)
    start = datetime.utcnow().replace(microsecond=0)
    deadline = time.monotonic() + SOAK_SECONDS
    while time.monotonic() < deadline:
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
        assert qs.proc.poll() is None, f"dev.py run exited:\n{qs.tail()}"
    end = datetime.utcnow().replace(microsecond=0)
    # Stored a few seconds after they ran: let the last slots arrive.
    time.sleep(5)

    slots = qs.slots(start)
    missing = gaps(slots, ids, start, end)
    # Every monitor was checked at every slot of the window.
    assert not missing, f"{len(missing)} monitors have gaps, e.g. {list(missing.items())[:5]}"
    stored = sum(len(v) for v in slots.values())
    assert stored >= SOAK_MONITORS * SOAK_SECONDS * 0.99

    # Every process lived through it, and none logged trouble.
    log = qs.log()
    trouble = [line for line in log.splitlines() if TROUBLE.search(line)]
    assert not trouble, "\n".join(trouble[:30])
    assert set(qs.pids()) == set(PROCESSES) and log.count("| started ") == len(PROCESSES)

    # Ctrl-C stops it all within a few seconds, with no error for a normal stop.
    took = qs.stop()
    assert took < 20, f"the stop took {took:.1f} s"
    after_stop = qs.log()[len(log):]
    assert not [line for line in after_stop.splitlines() if TROUBLE.search(line)], after_stop
    assert "did not stop" not in after_stop and "| stopped" in after_stop


def test_the_quick_start_brings_back_each_of_its_processes_killed_with_sigkill_and_checks_resume(
    quick_start, target
):
    qs = quick_start(LOOPR_MIN_INTERVAL="1")
    qs.start()
    ids = qs.create_monitors(20, target.url("/"))
    time.sleep(5)

    for name in PROCESSES:
        pid = qs.pids()[name]
        killed_at = datetime.utcnow()
        os.kill(pid, signal.SIGKILL)
        # dev.py notices, says so, and starts it again...
        wait_for(lambda: qs.pids()[name] != pid, timeout=30, message=f"{name} to be restarted")
        assert re.search(rf"{name} \(pid {pid}\) exited unexpectedly with signal SIGKILL; restarting", qs.log())
        # ...and every monitor is checked again afterwards.
        wait_for(lambda: all(qs.slots(killed_at).get(i, [])[-1:] and
                             (qs.slots(killed_at)[i][-1] - killed_at).total_seconds() > 5 for i in ids),
                 timeout=90, interval=1, message=f"checks to resume after {name} was killed")
        assert qs.proc.poll() is None
    assert set(qs.pids()) == set(PROCESSES)
