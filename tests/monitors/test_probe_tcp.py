"""The TCP probe, against real sockets on 127.0.0.1."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterator

import pytest

from monitors.choices import ErrorKind
from monitors.probes import CheckSpec, run_check


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def test_it_reports_ok_when_the_port_accepts_connections(listening_port: int) -> None:
    result = run_check(CheckSpec(f"tcp://127.0.0.1:{listening_port}", timeout=2))

    assert result.ok
    assert result.error == ""
    assert result.latency_ms is not None
    assert result.status_code is None


def test_it_reports_a_refused_connection(closed_port: int) -> None:
    result = run_check(CheckSpec(f"tcp://127.0.0.1:{closed_port}", timeout=2))

    assert result.error_kind == ErrorKind.REFUSED
    assert result.error == f"connection refused by 127.0.0.1:{closed_port}"


def test_it_reports_a_timeout_when_connecting_takes_too_long(blackhole_port: int) -> None:
    started = time.monotonic()
    result = run_check(CheckSpec(f"tcp://127.0.0.1:{blackhole_port}", timeout=0.5))
    elapsed = time.monotonic() - started

    assert result.error_kind == ErrorKind.TIMEOUT
    assert result.error == "no connection within 0.5 s"
    assert elapsed < 1.0


def test_it_reports_a_name_that_does_not_resolve() -> None:
    result = run_check(CheckSpec("tcp://loopr-probe-test.invalid:5432", timeout=2))

    assert result.error_kind == ErrorKind.DNS
    assert result.error.startswith("DNS lookup failed for loopr-probe-test.invalid")


def test_it_reports_an_unreachable_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(self: socket.socket, address: object) -> None:
        raise OSError(errno.EHOSTUNREACH, "No route to host")

    # No real unreachable address is allowed in tests, so the kernel's answer is faked.
    monkeypatch.setattr(socket.socket, "connect", unreachable)

    result = run_check(CheckSpec("tcp://127.0.0.1:5432", timeout=2))

    assert result.error_kind == ErrorKind.UNREACHABLE
    assert result.error == "127.0.0.1:5432 is unreachable: No route to host"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("tcp://127.0.0.1", "a tcp:// URL needs a port, e.g. tcp://db.example.com:5432"),
        ("tcp://:5432", "URL has no host"),
        ("tcp://127.0.0.1:http", None),
    ],
)
def test_it_reports_an_incomplete_target_as_invalid(url: str, error: str | None) -> None:
    result = run_check(CheckSpec(url, timeout=2))

    assert result.error_kind == ErrorKind.INVALID
    if error is not None:
        assert result.error == error
