"""The fleet harness itself: what a namespace can reach, and that nothing it
made outlives it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.support.processes import ROOT, wait_for

from .netns import FALLBACK_METRIC, STATE_DIR, FleetNetwork, ip, sweep_stale_runs

pytestmark = [pytest.mark.fleet, pytest.mark.usefixtures("fleet_network_required")]

# Run inside a namespace: try to connect to each ip:port, print what happened.
PROBE = """
import errno, json, socket, sys
out = []
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        out.append("ok")
    except socket.timeout:
        out.append("timeout")
    except OSError as exc:
        out.append(errno.errorcode.get(exc.errno, str(exc)))
print(json.dumps(out))
"""


def reach(host, *addresses: tuple[str, int]) -> list[str]:
    done = subprocess.run([*host.exec_prefix(), sys.executable, "-c", PROBE, *(f"{a}:{p}" for a, p in addresses)],
                          capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


def listen(address: str) -> tuple[str, int]:
    server = socket.create_server((address, 0))

    def accept() -> None:
        while True:
            try:
                server.accept()[0].close()
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return address, server.getsockname()[1]


def what_is_left(network: FleetNetwork, hosts: list) -> list[str]:
    netns = ip("netns", "list").stdout
    links = ip("-o", "link", "show").stdout
    addrs = ip("-o", "-4", "addr", "show").stdout
    routes = ip("route", "show", "table", "all").stdout
    left = [h.netns for h in hosts if h.netns in netns]
    left += [i for h in hosts for i in (h.host_if, h.ns_if) if i in links]
    left += [address for address in network.service_ips if f" {address}/" in addrs]
    left += [h.host_ip for h in hosts if f" {h.host_ip}/" in addrs]
    left += [line for line in routes.splitlines() if f"metric {FALLBACK_METRIC}" in line
             and any(line.startswith(f"unreachable {h.host_ip.rsplit('.', 1)[0]}.0/30") for h in hosts)]
    left += [str(network.state_path)] if network.state_path.exists() else []
    return left


@pytest.fixture
def network():
    built = FleetNetwork()
    yield built
    built.cleanup()


def test_a_namespace_reaches_its_veth_peer_and_the_service_addresses_and_a_block_applies_to_it_alone(network):
    a = network.add_node_host("a")
    second = network.add_service_address()  # after a, before b: both get its route
    b = network.add_node_host("b")
    service, other, peer_a, peer_b = (listen(network.service_ip), listen(second),
                                      listen(a.host_ip), listen(b.host_ip))

    # Each namespace reaches the service addresses and its own veth peer, not another's.
    assert reach(a, service, other, peer_a, peer_b) == ["ok", "ok", "ok", "ENETUNREACH"]
    assert reach(b, service, other, peer_b) == ["ok", "ok", "ok"]

    # A blocked service address fails at once, in that namespace only, and alone.
    a.block(network.service_ip)
    assert reach(a, service, other, peer_a) == ["EACCES", "ok", "ok"]
    assert reach(b, service) == ["ok"]
    a.unblock(network.service_ip)
    assert reach(a, service) == ["ok"]

    # The veth peer (where a node's Redis is) can be blocked too, a /32 beating
    # the /30, while the service address, routed through it, stays reachable.
    a.block(a.host_ip)
    assert reach(a, peer_a, service) == ["EACCES", "ok"]
    a.unblock(a.host_ip)
    assert reach(a, peer_a, service) == ["ok", "ok"]

    # A pulled cable: nothing gets through, in either direction, until it is back.
    a.link_down()
    assert reach(a, peer_a)[0] in ("timeout", "EHOSTUNREACH")
    assert ip("route", "get", a.ns_ip, check=False).returncode != 0, "the host must not route to a cut node"
    assert reach(b, peer_b) == ["ok"]
    a.link_up()
    # (TCP's first SYN may still meet the last moments of the outage: retry briefly.)
    wait_for(lambda: reach(a, peer_a, service) == ["ok", "ok"], timeout=10, message="the link to carry again")


def test_cleanup_removes_every_namespace_link_address_route_and_process_of_the_run():
    network = FleetNetwork()
    try:
        hosts = [network.add_node_host("a"), network.add_node_host("b")]
        network.add_service_address()
        # A process group started inside a namespace (ip execs the command: same pid)...
        group = subprocess.Popen([*hosts[0].exec_prefix(), "sh", "-c", "sleep 300 & sleep 300; wait"],
                                 start_new_session=True)
        network.record_pid(group.pid)
        # ...and one the run never recorded.
        stray = subprocess.Popen([*hosts[1].exec_prefix(), "sleep", "300"], start_new_session=True)
        time.sleep(0.3)
        assert len(hosts[0].pids()) == 3 and hosts[1].pids() == [stray.pid]

        # killpg on the pid we started takes the whole group inside the namespace.
        os.killpg(group.pid, signal.SIGKILL)
        group.wait(timeout=10)
        time.sleep(0.2)
        assert hosts[0].pids() == []
    finally:
        network.cleanup()

    assert stray.wait(timeout=10) == -signal.SIGKILL
    assert what_is_left(network, hosts) == []
    network.cleanup()  # a second time is harmless


def test_a_run_that_died_without_cleaning_up_is_swept_by_the_next():
    script = (
        "import json, os\n"
        "from tests.fleet.netns import FleetNetwork\n"
        "n = FleetNetwork(); h = n.add_node_host('x')\n"
        "print(json.dumps({'run': n.run_id, 'netns': h.netns, 'link': h.host_if, 'service': n.service_ip}), flush=True)\n"
        "os._exit(0)  # no atexit: as if killed\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          check=True, cwd=ROOT)
    dead = json.loads(done.stdout)
    assert (STATE_DIR / f"{dead['run']}.state").exists()
    assert dead["netns"] in ip("netns", "list").stdout

    assert dead["run"] in sweep_stale_runs()

    assert dead["netns"] not in ip("netns", "list").stdout
    assert dead["link"] not in ip("-o", "link", "show").stdout
    assert f" {dead['service']}/" not in ip("-o", "-4", "addr", "show").stdout
    assert not (STATE_DIR / f"{dead['run']}.state").exists()


def test_targets_get_addresses_of_their_own_and_the_test_process_sends_to_the_fleet_broker(fleet, settings):
    from loopr.celery import app

    first, second = fleet.target(), fleet.target()
    assert fleet.address_of(first) != fleet.address_of(second)
    assert {fleet.address_of(first), fleet.address_of(second)} <= set(fleet.network.service_ips)

    # What the code under test sends from this process (control commands, tasks) reaches the fleet.
    app.send_task("fleet.harness.probe", queue="fleet-harness")
    assert fleet.redis.client.llen("fleet-harness") == 1

    fleet.close()
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
