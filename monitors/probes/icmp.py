"""ICMP probe: does a host answer echo requests, how fast, how many lost?

`icmp://host` with icmplib: raw sockets when the node runs as root,
unprivileged datagram ICMP otherwise (Linux allows it to the groups in
net.ipv4.ping_group_range). A few packets; the latency is their average
round trip. Some lost is still up, with the loss in the result's message;
all lost is a timeout.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import icmplib

from loopr.addresses import RefusedAddress, refusal
from monitors.choices import ErrorKind

from .assertions import Observation, failed_assertion
from .base import CheckClock, CheckSpec, ProbeResult

PACKETS = 3
PACKET_INTERVAL = 0.2  # seconds between echo requests


def parse_icmp_url(url: str) -> str:
    """The host of `icmp://host`, or ValueError saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "icmp":
        raise ValueError("an ICMP target starts with icmp://")
    if parts.port is not None or parts.netloc.rpartition("]")[2].count(":") == 1:
        raise ValueError("ICMP has no ports: use icmp://host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("an ICMP target is only icmp://host")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    return parts.hostname


def check_icmp(spec: CheckSpec, clock: CheckClock) -> ProbeResult:
    try:
        host = parse_icmp_url(spec.url)
    except ValueError as exc:
        return clock.invalid(f"invalid ICMP target: {exc}")
    # Each packet waits at most its share of the deadline, so the check as a
    # whole keeps to it.
    per_packet = (clock.remaining() - (PACKETS - 1) * PACKET_INTERVAL) / PACKETS
    if per_packet <= 0.05:
        return clock.invalid(f"a timeout of {spec.timeout} s is too short for {PACKETS} pings")
    if spec.targets != "any":
        # Resolved here, to put each address to the policy before a packet
        # is sent (icmplib would resolve and send in one go).
        try:
            host = _allowed_address(host, spec)
        except socket.gaierror:
            return clock.result(ErrorKind.DNS, f"DNS lookup failed for {host}")
        except RefusedAddress as exc:
            return clock.invalid(f"{host}: {exc}")
    try:
        reply = icmplib.ping(host, count=PACKETS, interval=PACKET_INTERVAL, timeout=per_packet,
                             privileged=os.geteuid() == 0)
    except icmplib.NameLookupError:
        return clock.result(ErrorKind.DNS, f"DNS lookup failed for {host}")
    except icmplib.SocketPermissionError:
        return clock.result(ErrorKind.INTERNAL, "this node may not send ICMP: run it as root or allow its "
                                                "group in net.ipv4.ping_group_range")
    except icmplib.ICMPLibError as exc:
        return clock.result(ErrorKind.CONNECTION, f"ping {host} failed: {exc}")
    if not reply.is_alive:
        return clock.result(ErrorKind.TIMEOUT, f"no reply from {host} to {PACKETS} pings")
    failed = failed_assertion(spec.assertions, Observation(latency_ms=reply.avg_rtt))
    result = clock.result(ErrorKind.ASSERTION if failed else ErrorKind.OK, failed or _loss(reply))
    result.latency_ms = round(reply.avg_rtt, 3)
    return result


def _allowed_address(host: str, spec: CheckSpec) -> str:
    """The first address of `host` the policy allows; RefusedAddress if none."""
    addresses = list(dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)))
    for address in addresses:
        if not refusal(address, spec.targets):
            return address
    spec.guard.check(addresses[0])
    raise RefusedAddress(f"no address of {host} is allowed")  # not reached: check() raised


def _loss(reply: icmplib.Host) -> str:
    lost = reply.packets_sent - reply.packets_received
    return f"{lost} of {reply.packets_sent} packets lost" if lost else ""
