"""TCP probe: is something accepting connections on host:port?"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from loopr.addresses import RefusedAddress
from loopr.net import connect_first
from monitors.choices import ErrorKind

from .assertions import Observation, failed_assertion
from .base import CheckClock, CheckSpec, ProbeResult, describe_os_error, format_seconds


def check_tcp(spec: CheckSpec, clock: CheckClock) -> ProbeResult:
    try:
        parts = urlsplit(spec.url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port that is not a number, a broken IPv6 literal
        return clock.invalid(f"invalid URL: {exc}")
    if not host:
        return clock.invalid("URL has no host")
    if port is None:
        return clock.invalid("a tcp:// URL needs a port, e.g. tcp://db.example.com:5432")

    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:
        return clock.invalid(f"invalid host name {host!r}")
    except OSError as exc:
        return clock.result(*describe_os_error(exc, host, port))

    try:
        sock = connect_first(addresses, clock.remaining, guard=spec.guard)
    except RefusedAddress as exc:
        return clock.invalid(str(exc))
    except TimeoutError:
        return clock.result(
            ErrorKind.TIMEOUT, f"no connection within {format_seconds(spec.timeout)} s"
        )
    except OSError as exc:
        return clock.result(*describe_os_error(exc, host, port))
    sock.close()
    failed = failed_assertion(spec.assertions, Observation(latency_ms=clock.elapsed_ms()))
    return clock.result(ErrorKind.ASSERTION, failed) if failed else clock.result(ErrorKind.OK)
