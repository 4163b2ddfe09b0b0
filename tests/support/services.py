"""A Redis and a PostgreSQL cluster of a test's own, to kill and restart.

The machine's shared servers (6379, 5432) are never touched: each of these
listens on a free port of 127.0.0.1 and keeps its data in a directory of its
own under /tmp, removed when it is stopped.

    redis = RedisServer(workdir)     # redis-server, append-only file on
    redis.kill(); redis.start()      # kill -9, then the same port and data again
    pg = PostgresCluster(workdir)    # initdb + pg_ctl, as the `postgres` user
    pg.create_database("loopr"); pg.url("loopr")
    pg.stop_immediate(); pg.start()  # a crash (no shutdown checkpoint), then recovery
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

# Root may not run initdb or postgres; the cluster belongs to this user.
PG_USER = "postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: Debian keeps them out of PATH, under
    /usr/lib/postgresql/<major>/bin (the newest major wins)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


def services_unavailable() -> str:
    """Why these servers cannot be run here ("" when they can)."""
    if not shutil.which("redis-server"):
        return "redis-server is not installed"
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        return "initdb/pg_ctl are not installed (looked in /usr/lib/postgresql/*/bin and PATH)"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return f"there is no `{PG_USER}` user to run PostgreSQL as"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "runuser is not installed (root runs initdb and pg_ctl through it)"
    return ""


def _die_with_parent() -> None:
    import dev

    dev.die_with_parent()


# --- After a run that was killed ------------------------------------------------

WORKDIR_PREFIX = "loopr-fault-"


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (tells a reused pid apart), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def claim_workdir(workdir: Path) -> None:
    """Mark `workdir` as this process's, so that a later run can tell it
    was left behind by a run that died."""
    (workdir / "owner").write_text(f"{os.getpid()} {_process_start(os.getpid())}")


def sweep_stale_workdirs(base: Path = Path(tempfile.gettempdir())) -> list[Path]:
    """Stop the servers of runs whose process is gone (a killed pytest runs
    no teardown) and remove their directories; returns what was swept."""
    swept = []
    for workdir in sorted(base.glob(f"{WORKDIR_PREFIX}*")):
        try:
            pid, start = (workdir / "owner").read_text().split()
        except (OSError, ValueError):
            continue
        if _process_start(int(pid)) == start:
            continue  # its run is still going
        for pid_file in workdir.rglob("postmaster.pid"):
            PostgresCluster.stop_leftover(pid_file.parent)
        for pid_file in workdir.rglob("redis-server.pid"):
            try:
                leftover = int(pid_file.read_text())
                if b"redis-server" in Path(f"/proc/{leftover}/cmdline").read_bytes():
                    os.kill(leftover, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        shutil.rmtree(workdir, ignore_errors=True)
        swept.append(workdir)
    return swept


class RedisServer:
    """redis-server on a free port with an append-only file, like the
    production broker (docker-compose.yml: appendonly yes, whose default
    fsync is once a second, and noeviction): a restart after kill -9 gives
    back what was queued, except what the last second had not yet written."""

    def __init__(self, workdir: Path):
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "redis.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    def command(self) -> list[str]:
        return [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory-policy", "noeviction", "--daemonize", "no",
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30) -> None:
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=open(self.log_path, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        (self.dir / "redis-server.pid").write_text(str(self.proc.pid))
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        deadline = time.monotonic() + timeout
        while True:
            try:
                # PING answers LOADING while the append-only file is read back.
                if client.ping():
                    return
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start; see {self.log_path}")
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: no shutdown, no final write of the append-only file."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.kill()


class PostgresCluster:
    """A PostgreSQL cluster of its own: initdb into a directory owned by
    `postgres`, started and stopped with pg_ctl as that user, on a free port
    of 127.0.0.1 (its Unix socket in the data directory, not the shared
    server's /var/run/postgresql)."""

    def __init__(self, workdir: Path):
        self.bin = postgres_bin_dir()
        self.dir = workdir / "pgdata"
        self.log_path = workdir / "postgres.log"
        self.port = free_port()
        for path in (workdir, self.dir):
            path.mkdir(parents=True, exist_ok=True)
        user = pwd.getpwnam(PG_USER)
        for path in (workdir, self.dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        self.log_path.touch()
        os.chown(self.log_path, user.pw_uid, user.pw_gid)
        self._as_postgres(str(self.bin / "initdb"), "--pgdata", str(self.dir), "--username", PG_USER,
                          "--auth", "trust", "--encoding", "UTF8", "--no-sync")
        with open(self.dir / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.dir}'\n"
                # Test speed only: an immediate stop is a crash of PostgreSQL,
                # not of the machine, so what was written reaches the disk
                # from the OS cache anyway and the WAL replay is the same.
                "fsync = off\n"
                "full_page_writes = off\n"
                "max_connections = 200\n"
            )
        self.start()

    def _as_postgres(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              check=check, timeout=120)

    def url(self, database: str) -> str:
        return f"postgres://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres", **kwargs) -> psycopg.Connection:
        return psycopg.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname=database,
                               connect_timeout=5, **kwargs)

    def start(self) -> None:
        result = self._as_postgres(str(self.bin / "pg_ctl"), "start", "--pgdata", str(self.dir), "--wait",
                                   "--timeout", "60", "--log", str(self.log_path), check=False)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed ({result.returncode}): {result.stdout}{result.stderr}"
                               f"; see {self.log_path}")

    def stop_immediate(self) -> None:
        """`pg_ctl stop -m immediate`: every backend quits at once, no
        shutdown checkpoint; the next start recovers from the WAL."""
        result = self._as_postgres(str(self.bin / "pg_ctl"), "stop", "--pgdata", str(self.dir), "--mode",
                                   "immediate", "--wait", check=False)
        if result.returncode != 0 and self.running():
            raise RuntimeError(f"pg_ctl stop failed ({result.returncode}): {result.stdout}{result.stderr}")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def create_database(self, name: str) -> None:
        with self.connect(autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    @staticmethod
    def stop_leftover(data_dir: Path) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is not None:
            prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "stop", "--pgdata", str(data_dir), "--mode",
                            "immediate", "--wait"], capture_output=True, timeout=120, check=False)

    def close(self) -> None:
        """Stop it whatever state it is in: pg_ctl first, then the
        postmaster's own pid (from its pid file) if pg_ctl could not."""
        if self.running():
            self._as_postgres(str(self.bin / "pg_ctl"), "stop", "--pgdata", str(self.dir), "--mode", "immediate",
                              "--wait", check=False)
        pid = self.postmaster_pid()
        if pid is not None and self.running():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
