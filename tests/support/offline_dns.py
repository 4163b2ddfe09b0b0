"""Name resolution that never leaves the machine, for the test process.

Tests may only send traffic to 127.0.0.0/8, ::1 or namespaces they made, and
a DNS query for a name that is not in /etc/hosts goes to the system's
resolver, which is elsewhere. Such names (`*.invalid`, `*.example`) are in
the tests precisely to fail: here they fail at once, the way NXDOMAIN would,
with nothing sent. IP literals and the names /etc/hosts lists resolve as
usual.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

_real_getaddrinfo = socket.getaddrinfo


def _hosts_file_names() -> frozenset[str]:
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        lines = []
    return frozenset(name.lower() for line in lines for name in line.split("#", 1)[0].split()[1:])


LOCAL_NAMES = _hosts_file_names() | {"localhost"}


def resolves_locally(host: object) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
        return True
    except ValueError:
        pass
    name = name.rstrip(".").lower()
    return name in LOCAL_NAMES or name.endswith(".localhost")


def offline_getaddrinfo(host, *args, **kwargs):
    if not resolves_locally(host):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return _real_getaddrinfo(host, *args, **kwargs)


def install() -> None:
    global _real_getaddrinfo
    if socket.getaddrinfo is not offline_getaddrinfo:
        _real_getaddrinfo = socket.getaddrinfo  # gevent's, when the test run patched it first
        socket.getaddrinfo = offline_getaddrinfo
