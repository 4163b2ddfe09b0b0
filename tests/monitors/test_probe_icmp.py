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
