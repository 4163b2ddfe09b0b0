"""Probe nodes in network namespaces of their own, joined to this host by veth pairs.

Every address here is in 10.231.0.0/16 and made by this module:

- node host i: host side `10.231.<o>.1/30` on `lh<run><i>`, namespace side
  `10.231.<o>.2/30` on `ln<run><i>` (one free third octet `o` per node);
- the run's *service addresses* `10.231.255.<k>/32` on the host's `lo`: target
  servers listen there, and each namespace routes them via the host side of its
  own veth, so one URL serves every node (one address per target, so that a
  namespace can lose one target and keep the others);
- a namespace has no other route, in particular no default route: from inside
  it, only its own veth peer and the service addresses can be reached;
- the host gets an `unreachable` route under each node's /30 (high metric): the
  connected route wins while the link is up, and while it is down traffic to
  that node fails on the host instead of following the host's default route out.

No sysctl is changed: the replies to a namespace leave by the interface the
request came in on, so reverse-path filtering is satisfied in any mode, and
nothing is forwarded.

Everything a run makes is written to `/run/loopr-fleet/<run>.state` *before* it
is made. `FleetNetwork.cleanup()` undoes it (it is idempotent and also runs at
interpreter exit), and every new `FleetNetwork` first sweeps the state of runs
whose process is gone (a run killed with SIGKILL). By hand:
`python -m tests.fleet.netns sweep`.
"""

from __future__ import annotations

import atexit
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

STATE_DIR = Path("/run/loopr-fleet")
NETWORK = ipaddress.ip_network("10.231.0.0/16")
SERVICE_OCTET = 255  # 10.231.255.<k>/32: the runs' service addresses
# Under the connected route (metric 0) of a node's /30, for while its link is down.
FALLBACK_METRIC = "4242"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,19}")


class NetnsError(RuntimeError):
    pass


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {done.stderr.strip() or done.returncode}")
    return done


def namespaces_available() -> tuple[bool, str]:
    """Whether this process may build a fleet: a throwaway namespace with a
    veth pair inside it is made, entered and deleted."""
    if sys.platform != "linux":
        return False, "network namespaces need Linux"
    if not shutil.which("ip"):
        return False, "the `ip` command (iproute2) is not installed"
    name = f"loopr-check-{secrets.token_hex(3)}"
    made = ip("netns", "add", name, check=False)
    if made.returncode:
        return False, (f"cannot create a network namespace (`ip netns add`: {made.stderr.strip()}); "
                       "the fleet test needs root or CAP_SYS_ADMIN + CAP_NET_ADMIN")
    try:
        veth = ip("-n", name, "link", "add", "lcheck0", "type", "veth", "peer", "name", "lcheck1", check=False)
        if veth.returncode:
            return False, f"cannot create a veth pair: {veth.stderr.strip()}"
        entered = subprocess.run(["ip", "netns", "exec", name, "true"], capture_output=True, text=True, timeout=30)
        if entered.returncode:
            return False, f"cannot run a process in a namespace (`ip netns exec`): {entered.stderr.strip()}"
    finally:
        ip("netns", "del", name, check=False)  # the veth pair inside goes with it
    try:
        STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return False, f"cannot write {STATE_DIR}: {exc}"
    return True, ""


# --- processes ------------------------------------------------------------------


def process_start_time(pid: int) -> str | None:
    """The start time of a running process (clock ticks since boot), which
    tells a recorded process from a later one that got the same pid; None
    for no process or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in "ZX" else fields[19]


def _alive(pid: int, start: str | None) -> bool:
    return start is not None and process_start_time(pid) == start


def _kill_group(pid: int) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- the run's record -----------------------------------------------------------


@contextmanager
def _allocation_lock() -> Iterator[None]:
    """Concurrent runs choose addresses one at a time."""
    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_state(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def _undo(entries: list[dict]) -> None:
    """Remove what a run made, newest first; whatever is already gone is skipped."""
    for entry in entries:  # processes first: they hold namespaces open
        if "pid" in entry and _alive(entry["pid"], entry.get("start")):
            _kill_group(entry["pid"])
    for entry in entries:
        if "netns" in entry:
            for pid in ip("netns", "pids", entry["netns"], check=False).stdout.split():
                _kill_group(int(pid))  # started inside this run's own namespace
    for entry in reversed(entries):
        if "route" in entry:
            ip("route", "del", *entry["route"].split(), check=False)
        elif "addr" in entry:
            ip("addr", "del", entry["addr"], "dev", entry["dev"], check=False)
        elif "link" in entry:
            ip("link", "del", entry["link"], check=False)  # its veth peer goes with it
        elif "netns" in entry:
            ip("netns", "del", entry["netns"], check=False)


def sweep_stale_runs() -> list[str]:
    """Clean up after runs whose process is gone; returns their ids."""
    swept = []
    if not STATE_DIR.is_dir():
        return swept
    # Under the lock, in which a run writes its first line: never half-written.
    with _allocation_lock():
        for path in sorted(STATE_DIR.glob("*.state")):
            entries = _read_state(path)
            owner = entries[0] if entries else {}
            if _alive(owner.get("owner", -1), owner.get("owner_start")):
                continue
            _undo(entries)
            path.unlink(missing_ok=True)
            swept.append(path.stem)
    return swept


def _octets_in_use() -> tuple[set[int], set[int]]:
    """Third octets of node /30s, and last octets of service addresses, that
    any run (or anything else on this host) holds."""
    nodes, services = set(), set()
    for path in STATE_DIR.glob("*.state"):
        for entry in _read_state(path):
            if "octet" in entry:
                nodes.add(entry["octet"])
            if "service" in entry:
                services.add(entry["service"])
    for text in (ip("-o", "-4", "addr", "show").stdout, ip("-4", "route", "show", "table", "all").stdout):
        for found in re.findall(r"\b10\.231\.(\d+)\.(\d+)", text):
            third, fourth = int(found[0]), int(found[1])
            (services.add(fourth) if third == SERVICE_OCTET else nodes.add(third))
    return nodes, services


# --- the network ----------------------------------------------------------------


@dataclass
class NodeHost:
    """One network namespace, joined to the host by its own veth pair."""

    name: str
    netns: str
    index: int
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str
    _saved_routes: dict[str, str] = field(default_factory=dict, repr=False)

    def exec_prefix(self) -> list[str]:
        """Prepend to a command to run it inside this namespace (`ip` execs
        the command: same pid, so a new session and killpg work as usual)."""
        return ["ip", "netns", "exec", self.netns]

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return ip("-n", self.netns, *args, check=check)

    def link_down(self) -> None:
        """Pull the cable: the host side of the veth goes down. Packets in
        flight are dropped silently; established connections hang."""
        ip("link", "set", self.host_if, "down")

    def link_up(self, timeout: float = 10.0) -> None:
        """Plug the cable back in, and return once it carries traffic: both
        ends up, and no neighbour entry left FAILED from while it was down
        (which would stall the first connections for seconds)."""
        ip("link", "set", self.host_if, "up")
        ip("neigh", "flush", "dev", self.host_if, check=False)
        self.ip("neigh", "flush", "dev", self.ns_if, check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            host_side = ip("-o", "link", "show", self.host_if, check=False).stdout
            ns_side = self.ip("-o", "link", "show", self.ns_if, check=False).stdout
            if "LOWER_UP" in host_side and "LOWER_UP" in ns_side:
                return
            time.sleep(0.05)

    def block(self, address: str, how: str = "prohibit") -> None:
        """Make `address` unreachable from inside this namespace only. With
        `prohibit` a connect fails at once (EACCES), with `blackhole` too
        (EINVAL); established connections fail on their next send. A /32
        beats the connected /30, so the veth peer itself can be blocked."""
        if how not in ("prohibit", "blackhole", "unreachable"):
            raise ValueError(f"unknown way to block: {how!r}")
        prefix = f"{ipaddress.ip_address(address)}/32"
        if prefix not in self._saved_routes:
            self._saved_routes[prefix] = self.ip("route", "show", "exact", prefix).stdout.strip()
        self.ip("route", "replace", how, prefix)

    def unblock(self, address: str) -> None:
        prefix = f"{ipaddress.ip_address(address)}/32"
        if prefix not in self._saved_routes:
            return
        saved = self._saved_routes.pop(prefix)
        if saved:
            self.ip("route", "replace", *saved.split())
        else:
            self.ip("route", "del", prefix)

    def pids(self) -> list[int]:
        return [int(pid) for pid in ip("netns", "pids", self.netns, check=False).stdout.split()]


class FleetNetwork:
    """The namespaces, veths, addresses and routes of one test run."""

    def __init__(self) -> None:
        self.run_id = secrets.token_hex(3)
        self.hosts: dict[str, NodeHost] = {}
        self.service_ips: list[str] = []
        self.state_path = STATE_DIR / f"{self.run_id}.state"
        self._entries: list[dict] = []
        self._closed = False
        sweep_stale_runs()
        with _allocation_lock():
            self._record({"owner": os.getpid(), "owner_start": process_start_time(os.getpid())})
            atexit.register(self.cleanup)
        try:
            self.add_service_address()
        except BaseException:
            self.cleanup()
            raise

    @property
    def service_ip(self) -> str:
        """The run's first service address."""
        return self.service_ips[0]

    def add_service_address(self) -> str:
        """One more host address that every namespace, now and later, reaches
        via its own veth peer."""
        with _allocation_lock():
            _nodes, services = _octets_in_use()
            k = min(set(range(1, SERVICE_OCTET)) - services)
            address = f"10.231.{SERVICE_OCTET}.{k}"
            self._record({"service": k, "addr": f"{address}/32", "dev": "lo"})
            ip("addr", "add", f"{address}/32", "dev", "lo")
        self.service_ips.append(address)
        for host in self.hosts.values():
            host.ip("route", "add", f"{address}/32", "via", host.host_ip, "dev", host.ns_if)
        return address

    def _record(self, entry: dict) -> None:
        self._entries.append(entry)
        with open(self.state_path, "a") as state:
            state.write(json.dumps(entry) + "\n")

    def record_pid(self, pid: int) -> None:
        """A process of this run's: killed by cleanup() and by a later run's
        sweep if this run dies first."""
        self._record({"pid": pid, "start": process_start_time(pid)})

    def add_node_host(self, name: str) -> NodeHost:
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"node host name: lower-case letters, digits and '-', at most 20: {name!r}")
        if name in self.hosts:
            raise ValueError(f"there is already a node host {name!r}")
        index = len(self.hosts) + 1
        netns = f"loopr-{self.run_id}-{name}"
        host_if, ns_if = f"lh{self.run_id}{index:02d}", f"ln{self.run_id}{index:02d}"  # 10 of 15 chars
        with _allocation_lock():
            nodes, _services = _octets_in_use()
            octet = min(set(range(1, SERVICE_OCTET)) - nodes)
            host_ip, ns_ip = f"10.231.{octet}.1", f"10.231.{octet}.2"
            self._record({"octet": octet, "netns": netns})
            ip("netns", "add", netns)
            self._record({"link": host_if})
            ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", netns)
            ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        fallback = f"unreachable 10.231.{octet}.0/30 metric {FALLBACK_METRIC}"
        self._record({"route": fallback})
        ip("route", "add", *fallback.split())
        ip("link", "set", host_if, "up")
        host = NodeHost(name, netns, index, host_if, ns_if, host_ip, ns_ip)
        host.ip("link", "set", "lo", "up")
        host.ip("addr", "add", f"{ns_ip}/30", "dev", ns_if)
        host.ip("link", "set", ns_if, "up")
        for address in self.service_ips:
            host.ip("route", "add", f"{address}/32", "via", host_ip, "dev", ns_if)
        self.hosts[name] = host
        return host

    def cleanup(self) -> None:
        """Remove everything this run made; safe to call any number of times."""
        if self._closed:
            return
        _undo(self._entries)
        self.state_path.unlink(missing_ok=True)
        self.hosts.clear()
        self._closed = True
        atexit.unregister(self.cleanup)


if __name__ == "__main__":
    if sys.argv[1:] != ["sweep"]:
        sys.exit("usage: python -m tests.fleet.netns sweep")
    print("swept:", " ".join(sweep_stale_runs()) or "nothing")
