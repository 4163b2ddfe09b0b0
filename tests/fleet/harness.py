"""A fleet on one machine: the central services on the host, probe nodes in
network namespaces (see netns.py), a Redis of the fleet's own, and targets,
each on a service address of its own that every namespace reaches.

    host = fleet.node_host("eu1")             # a namespace and its veth pair
    fleet.start_central(); fleet.start_beat() # on the host, on the test database
    fleet.start_node(host, "eu-west")         # a probe node inside the namespace
    target = fleet.target()                   # http://10.231.255.<k>:<port>
    host.block(fleet.address_of(target))      # that target, from this namespace only
    host.unblock(fleet.address_of(target))
    host.block(host.host_ip)                  # its Redis (the targets stay reachable)
    host.link_down() / host.link_up()         # pull the cable / plug it back
    fleet.kill("eu1")                         # SIGKILL the node's process group
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import redis

from tests.support.processes import Processes, wait_for
from tests.support.targets import Target, start_target

from .netns import FleetNetwork, NodeHost

REDIS_SERVER = "redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FleetRedis:
    """A redis-server for one fleet: on loopback for the host's processes and
    on the host side of every node's veth, each node reaching it there."""

    def __init__(self, log_dir: Path, network: FleetNetwork):
        self.log_dir = log_dir
        self.binds = ["127.0.0.1"]
        self.proc: subprocess.Popen | None = None
        for _attempt in range(3):  # the free port may be taken before redis binds it
            self.port = free_port()
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                 # Only loopback and this run's veth addresses are ever bound.
                 "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", str(log_dir)],
                stdout=open(log_dir / "redis.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,
            )
            network.record_pid(self.proc.pid)
            self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
            if self._wait_ready():
                return
            self.stop()
        raise RuntimeError(f"redis-server did not start; see {log_dir / 'redis.log'}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                return bool(self.client.ping())
            except redis.ConnectionError:
                time.sleep(0.05)
        return False

    def listen_on(self, address: str) -> None:
        # Redis 7 rebinds at run time, keeping the connections it has.
        self.binds.append(address)
        self.client.config_set("bind", " ".join(self.binds))

    def url(self, address: str = "127.0.0.1") -> str:
        return f"redis://{address}:{self.port}/0"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)


def use_broker_here(url: str) -> Callable[[], None]:
    """Point this (the test's) process's Celery app at `url`, so that what the
    code under test sends from here (control commands to nodes, notification
    tasks) reaches the fleet; returns the undo."""
    from loopr.celery import app

    keys = ("broker_url", "broker_write_url", "broker_read_url", "broker_transport_options")
    saved = {key: app.conf.get(key) for key in keys}

    def drop_pools() -> None:
        # Celery caches its connection and producer pools on first use, and
        # kombu keeps them in a registry by URL: a pool only closed here would
        # come back, closed, to whoever asks for the same broker again.
        from kombu import pools

        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    drop_pools()
    app.conf.update(broker_url=url, broker_write_url=None, broker_read_url=None, broker_transport_options={})

    def undo() -> None:
        drop_pools()
        app.conf.update(saved)

    return undo


class Fleet:
    def __init__(self, log_dir: Path, database_url: str):
        self.log_dir = log_dir
        self.targets: list[Target] = []
        self.nodes: set[str] = set()
        self.network = FleetNetwork()
        try:
            self.redis = FleetRedis(log_dir, self.network)
            self._restore_broker = use_broker_here(self.redis.url())
        except BaseException:
            self.network.cleanup()  # kills the recorded redis-server too
            raise
        self.processes = Processes(log_dir, {
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis.url(),
            "LOOPR_MIN_INTERVAL": "1",
            "LOOPR_HEARTBEAT_INTERVAL": "1",
            "LOOPR_RESULT_FLUSH_SECONDS": "0.2",
            "PYTHONUNBUFFERED": "1",
        })

    @property
    def hosts(self) -> dict[str, NodeHost]:
        return self.network.hosts


    # --- the network ---

    def node_host(self, name: str) -> NodeHost:
        """A new namespace `loopr-<run>-<name>` joined to the host; the
        fleet's Redis listens on its veth's host side."""
        host = self.network.add_node_host(name)
        self.redis.listen_on(host.host_ip)
        return host

    def target(self) -> Target:
        """A steerable HTTP server on a service address of its own: the same
        URL from every namespace and from the host."""
        taken = {self.address_of(t) for t in self.targets}
        free = [a for a in self.network.service_ips if a not in taken]
        target = start_target(host=free[0] if free else self.network.add_service_address())
        self.targets.append(target)
        return target

    @staticmethod
    def address_of(target: Target) -> str:
        return target.server.server_address[0]

    # --- processes ---

    def _started(self, proc: subprocess.Popen) -> subprocess.Popen:
        self.network.record_pid(proc.pid)
        return proc

    def start_central(self, name: str = "central", **env: str) -> subprocess.Popen:
        return self._started(self.processes.central(name, **env))

    def start_beat(self, **env: str) -> subprocess.Popen:
        return self._started(self.processes.beat(**env))

    def node_env(self, host: NodeHost, region: str, **env: str) -> dict[str, str]:
        """Everything a node process is given beyond the fleet's base env:
        the broker through its own veth. `Processes.probe` adds a database
        that does not exist, `LOOPR_REGION`, and, where it issues them, a node
        token unless the test passes `LOOPR_NODE_TOKEN` itself."""
        return {"REDIS_URL": self.redis.url(host.host_ip), **env}

    def start_node(self, host: NodeHost, region: str, name: str | None = None, concurrency: int = 100,
                   **env: str) -> subprocess.Popen:
        """A probe node (Celery worker on `probe.<region>`) inside `host`'s
        namespace, named `<name>@<hostname>` (name defaults to the host's)."""
        name = name or host.name
        self.nodes.add(name)
        return self._started(self.processes.probe(name, region, concurrency, prefix=host.exec_prefix(),
                                                  **self.node_env(host, region, **env)))

    def start_node_on_host(self, name: str, region: str, concurrency: int = 100, **env: str) -> subprocess.Popen:
        """A probe node in the host's own namespace: the one place that
        reaches every node's namespace (a namespace reaches only the host and
        the service addresses), so it can check the namespaces themselves."""
        self.nodes.add(name)
        return self._started(self.processes.probe(name, region, concurrency,
                                                  **{"REDIS_URL": self.redis.url(), **env}))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill a process (node, central, beat) and its children."""
        self.processes.kill(name, sig)

    def wait_for_heartbeat(self, node_name: str, timeout: float = 60):
        from workers.models import WorkerNode

        return wait_for(lambda: WorkerNode.objects.filter(name__startswith=f"{node_name}@").first(),
                        timeout=timeout, message=f"a heartbeat from {node_name}")

    # --- teardown ---

    def logs(self) -> str:
        return self.processes.logs()

    def close(self) -> None:
        """Stop every process, server and namespace; safe to call twice."""
        try:
            self._restore_broker()
            # Nodes hold no database connection and one behind a cut link would
            # hang in a warm shutdown: they are killed outright. The central
            # processes stop gracefully, closing their connections to the test DB.
            for name in self.nodes & self.processes.procs.keys():
                self.processes.kill(name)
            self.processes.stop_all()
            for target in self.targets:
                target.server.shutdown()
                target.server.server_close()
            self.targets.clear()
            self.redis.stop()
        finally:
            self.network.cleanup()
