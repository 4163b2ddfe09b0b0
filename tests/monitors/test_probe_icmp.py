"""The ICMP probe, against 127.0.0.1 (raw sockets: the tests run as root;
otherwise unprivileged datagram ICMP, where the system allows it)."""

from __future__ import annotations

import os
import time

import pytest

from monitors.choices import ErrorKind
from monitors.probes import CheckSpec, run_check


def ping_allowed() -> bool:
    if os.geteuid() == 0:
        return True
    with open("/proc/sys/net/ipv4/ping_group_range") as ranges:
        low, high = map(int, ranges.read().split())
    return any(low <= group <= high for group in os.getgroups())


pytestmark = pytest.mark.skipif(not ping_allowed() and os.environ.get("CI") != "true",
                                reason="this user may not send ICMP (not root, not in ping_group_range)")


def test_loopback_answers_with_a_round_trip_latency() -> None:
    result = run_check(CheckSpec("icmp://127.0.0.1", timeout=2, kind="icmp"))

    assert result.ok, result.error
    assert result.error_kind == ErrorKind.OK
    assert result.error == ""  # nothing lost
    assert result.latency_ms is not None and 0 <= result.latency_ms < 100


def test_a_latency_assertion_applies_to_the_round_trip() -> None:
    result = run_check(CheckSpec("icmp://127.0.0.1", timeout=2, kind="icmp",
                                 assertions=[{"source": "latency", "op": "lt", "value": 0}]))

    assert result.error_kind == ErrorKind.ASSERTION
    assert result.error.startswith("latency: expected lt 0, got ")


def test_a_host_name_is_resolved_first() -> None:
    # localhost comes from /etc/hosts: no query leaves the machine.
    result = run_check(CheckSpec("icmp://localhost", timeout=2, kind="icmp"))

    assert result.ok, result.error


def test_the_check_keeps_to_its_deadline() -> None:
    started = time.monotonic()

    result = run_check(CheckSpec("icmp://127.0.0.1", timeout=1, kind="icmp"))

    assert result.ok, result.error
    assert time.monotonic() - started < 1.5


def test_an_icmp_url_with_a_port_is_invalid() -> None:
    result = run_check(CheckSpec("icmp://127.0.0.1:80", timeout=2, kind="icmp"))

    assert result.error_kind == ErrorKind.INVALID
    assert "no ports" in result.error


UNPRIVILEGED_CHECK = """
import django; django.setup()
from monitors.probes import CheckSpec, run_check
result = run_check(CheckSpec("icmp://127.0.0.1", timeout=2, kind="icmp"))
print(result.error_kind, "|", result.error)
"""


def run_unprivileged(group_range: str) -> str:
    """The probe as user nobody, in a network namespace of its own whose
    net.ipv4.ping_group_range is `group_range` (a per-namespace setting)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = (f'ip link set lo up && sysctl -qw net.ipv4.ping_group_range="{group_range}" && '
              f"exec setpriv --reuid=65534 --regid=65534 --clear-groups "
              f"env HOME=/tmp LOOPR_VAR_DIR=/tmp/loopr-icmp-test {sys.executable} -c '{UNPRIVILEGED_CHECK}'")
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], cwd=root, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "loopr.settings"})
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr


needs_root = pytest.mark.skipif(os.geteuid() != 0 and os.environ.get("CI") != "true",
                                reason="needs root to make a network namespace and switch users")


@needs_root
def test_an_unprivileged_node_pings_with_datagram_icmp_where_the_system_allows_it() -> None:
    assert run_unprivileged("0 2147483647") == "ok |"


@needs_root
def test_an_unprivileged_node_that_may_not_ping_says_so() -> None:
    line = run_unprivileged("1 0")

    assert line.startswith("internal | this node may not send ICMP"), line
