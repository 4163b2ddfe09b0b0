"""Real Loopr processes (web, beat, central worker, probe nodes) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def procfile_entries() -> dict[str, str]:
    """The Procfile's processes, as dev.py run reads them."""
    import dev

    return dev.read_procfile((ROOT / "Procfile").read_text())


def database_url() -> str:
    """The URL of the database the test runs on (pytest-django's test DB)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = quote(s["USER"] or "")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"])
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _die_with_parent() -> None:
    import dev

    dev.die_with_parent()


class Processes:
    """Starts Loopr processes and makes sure every one of them is gone afterwards."""

    def __init__(self, log_dir: Path, base_env: dict[str, str], die_with_parent: bool = True):
        self.log_dir = log_dir
        self.base_env = base_env
        self.procs: dict[str, subprocess.Popen] = {}
        # Processes started again under a name whose earlier one still ran:
        # stopped with the rest, never left behind to take a later test's work.
        self.replaced: list[subprocess.Popen] = []
        # Linux's parent-death signal: a test run that is itself killed
        # takes its processes along (a killed run once left a central, a beat
        # and two probe nodes working on its test database for half an hour).
        # Only for processes started from the main thread: the signal follows
        # the thread that forked, and a helper thread's end would kill them.
        self.die_with_parent = die_with_parent

    def start(self, name: str, args: list[str], prefix: list[str] | None = None, **env: str) -> subprocess.Popen:
        full_env = {**os.environ, **self.base_env, **env}
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [*(prefix or []), *args], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent and threading.current_thread() is threading.main_thread()
            else None,
        )
        previous = self.procs.get(name)
        if previous is not None and previous.poll() is None:
            self.replaced.append(previous)
        self.procs[name] = proc
        return proc

    def procfile(self, name: str, **env: str) -> subprocess.Popen:
        """The Procfile's entry `name`, started as dev.py run starts it
        (through the shell, for its ${VAR:-default}s, with the venv's
        commands first on PATH)."""
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return self.start(name, ["/bin/sh", "-c", f"exec {procfile_entries()[name]}"], PATH=path, **env)

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def beat(self, **env: str) -> subprocess.Popen:
        return self.start("beat", [CELERY, "-A", "loopr", "beat", "--loglevel", "INFO",
                                   "--schedule", str(self.log_dir / "beat-schedule")], **env)

    def central(self, name: str = "central", dispatcher: bool = True, **env: str) -> subprocess.Popen:
        """The central worker and, unless told otherwise, the dispatcher (as
        `dev.py run` starts both)."""
        if dispatcher and not self.running(f"{name}-dispatcher"):
            self.dispatcher(f"{name}-dispatcher", **env)
        return self.start(name, [CELERY, "-A", "loopr", "worker", "--queues", "central,ingest,heartbeat",
                                 "--hostname", f"{name}@%h", "--concurrency", "2", "--loglevel", "INFO"], **env)

    def dispatcher(self, name: str = "dispatcher", **env: str) -> subprocess.Popen:
        return self.start(name, [CELERY, "-A", "loopr", "worker", "--queues", "dispatch", "--hostname",
                                 f"{name}@%h", "--pool", "solo", "--loglevel", "INFO"], **env)

    def probe(self, name: str, region: str = "local", concurrency: int = 100,
              prefix: list[str] | None = None, **env: str) -> subprocess.Popen:
        # A probe node gets no usable database: it must not need one. It is
        # enrolled in its region unless the test hands it a token (or "").
        env.setdefault("DATABASE_URL", "postgres://nobody@127.0.0.1:1/no_database_here")
        if "LOOPR_NODE_TOKEN" not in env:
            from workers.models import NodeToken

            env["LOOPR_NODE_TOKEN"] = NodeToken.issue(region, label=name)[1]
        # As the Procfile runs it: the gevent pool (every check a greenlet;
        # `concurrency` batches at once), and no mingle, gossip or event
        # heartbeat, which would publish, and a node's broker user may not
        # (workers/broker_acl.py).
        return self.start(name, [CELERY, "-A", "loopr", "worker", "--pool", "gevent", "--queues", f"probe.{region}",
                                 "--without-mingle", "--without-gossip", "--without-heartbeat",
                                 "--hostname", f"{name}@%h", "--concurrency", str(concurrency),
                                 "--loglevel", "INFO"], prefix=prefix, LOOPR_REGION=region, **env)

    def web(self, name: str = "web", workers: int = 2, **env: str) -> str:
        """The web (gunicorn, as the Procfile runs it) on a free port; returns its base URL."""
        import socket

        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        # Its own control socket: parallel test runs must not share one in $HOME.
        self.start(name, [gunicorn, "loopr.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                          "--threads", "4", "--control-socket", str(self.log_dir / f"{name}.ctl")], **env)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base + "/"), timeout=60, message=f"{name} to answer")
        return base

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        everything = [*self.procs.values(), *self.replaced]
        for proc in everything:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        for proc in everything:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        self.procs.clear()
        self.replaced.clear()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def logs(self) -> str:
        out = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace")
            out.append(f"===== {path.name} (last 60 lines) =====\n" + "\n".join(text.splitlines()[-60:]))
        return "\n".join(out)


def _answers(url: str) -> bool:
    import requests

    try:
        requests.get(url, timeout=5)
    except requests.RequestException:
        return False
    return True


def wait_for(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
