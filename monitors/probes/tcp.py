"""TCP probe: is something accepting connections on host:port?"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from monitors.choices import ErrorKind

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

    last_error: OSError | None = None
    for family, kind, proto, _, address in addresses:
        remaining = clock.remaining()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            # Each address gets only what is left, so a host with several
            # addresses cannot stretch the check past its deadline.
            sock.settimeout(remaining)
            sock.connect(address)
        except OSError as exc:
            last_error = exc
            continue
        finally:
            sock.close()
        return clock.result(ErrorKind.OK)

    if last_error is None or isinstance(last_error, TimeoutError):
        return clock.result(
            ErrorKind.TIMEOUT, f"no connection within {format_seconds(spec.timeout)} s"
        )
    return clock.result(*describe_os_error(last_error, host, port))
