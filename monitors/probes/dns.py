"""DNS probe: does a name resolve, with records of the type asked for?

A target is RFC 4501's URI, `dns://[resolver[:port]]/name?type=A`: no
resolver means the node's own (the nameservers of its /etc/resolv.conf, in
turn). Up when the answer is NOERROR with at least one record of the type;
NXDOMAIN, SERVFAIL and the like, or no answer in time, are `dns` failures
naming the rcode. Expected values are assertions with `source: "dns"`, over
the answer's records as text (`records`).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from loopr.addresses import RefusedAddress, refusal
from monitors.choices import ErrorKind

from .assertions import Observation, failed_assertion
from .base import CheckClock, CheckSpec, ProbeResult, format_seconds

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "CAA")
DEFAULT_PORT = 53


@dataclass(frozen=True)
class DnsTarget:
    name: str
    record_type: str
    resolver: str | None  # host name or address; None: the node's own
    port: int


def parse_dns_url(url: str) -> DnsTarget:
    """`dns://[resolver[:port]]/name?type=T`, or ValueError saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "dns":
        raise ValueError("a DNS target starts with dns://")
    name = unquote(parts.path.lstrip("/")).rstrip(".")
    if not name:
        raise ValueError("a DNS target names the record to look up: dns:///example.com?type=A")
    if "/" in name:
        raise ValueError(f"{name!r} is not a DNS name")
    try:
        dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise ValueError(f"{name!r} is not a DNS name: {exc}") from exc
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    record_type = query.pop("type", "A").upper()
    if query.pop("class", "IN").upper() != "IN":
        raise ValueError("only class IN is looked up")
    if query:
        raise ValueError(f"unknown parameter(s) {', '.join(sorted(query))}: use ?type=A|AAAA|…")
    if record_type not in RECORD_TYPES:
        raise ValueError(f"unknown record type {record_type!r}; one of {', '.join(RECORD_TYPES)}")
    port = parts.port  # ValueError when not a number or out of range
    if port == 0:
        raise ValueError("the resolver's port must be a number from 1 to 65535")
    return DnsTarget(name=name, record_type=record_type, resolver=parts.hostname or None, port=port or DEFAULT_PORT)


def check_dns(spec: CheckSpec, clock: CheckClock) -> ProbeResult:
    try:
        target = parse_dns_url(spec.url)
    except ValueError as exc:
        return clock.invalid(f"invalid DNS target: {exc}")
    try:
        servers = _servers(target)
    except OSError as exc:
        return clock.result(ErrorKind.DNS, f"could not resolve the resolver {target.resolver}: {exc.strerror or exc}")
    if not servers:
        return clock.invalid("the node has no resolver configured (/etc/resolv.conf)")
    if target.resolver is not None:
        # A resolver the monitor names is a target like any other; the
        # node's own (resolv.conf) are its operator's choice, not a user's.
        allowed = [server for server in servers if not refusal(server, spec.targets)]
        if not allowed:
            try:
                spec.guard.check(servers[0])
            except RefusedAddress as exc:
                return clock.invalid(f"resolver {target.resolver}: {exc}")
        servers = allowed
    response, problem = _ask(target, servers, clock)
    if response is None:
        return clock.result(ErrorKind.DNS if problem != "timeout" else ErrorKind.TIMEOUT,
                            f"no answer for {target.name} {target.record_type} within "
                            f"{format_seconds(spec.timeout)} s" if problem == "timeout" else problem)
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        return clock.result(ErrorKind.DNS, f"{dns.rcode.to_text(rcode)} for {target.name} {target.record_type}")
    records = answer_records(response, target.record_type)
    if not records:
        return clock.result(ErrorKind.DNS, f"NOERROR but no {target.record_type} record for {target.name}")
    latency = clock.elapsed_ms()
    failed = failed_assertion(spec.assertions, Observation(latency_ms=latency, dns_records=records))
    if failed:
        return clock.result(ErrorKind.ASSERTION, failed)
    return clock.result(ErrorKind.OK)


def _servers(target: DnsTarget) -> list[str]:
    if target.resolver is None:
        return list(dns.resolver.Resolver().nameservers)
    try:
        return [str(ipaddress.ip_address(target.resolver))]
    except ValueError:
        infos = socket.getaddrinfo(target.resolver, target.port, type=socket.SOCK_DGRAM)
        return list(dict.fromkeys(info[4][0] for info in infos))


def _ask(target: DnsTarget, servers: list[str], clock: CheckClock) -> tuple[dns.message.Message | None, str]:
    """The first answer any server gives (each gets an equal share of what is
    left of the deadline), or None and why not."""
    query = dns.message.make_query(target.name + ".", dns.rdatatype.from_text(target.record_type))
    problem = "timeout"
    for index, server in enumerate(servers):
        share = clock.remaining() / (len(servers) - index)
        if share <= 0:
            break
        try:
            response, _used_tcp = dns.query.udp_with_fallback(query, server, timeout=share, port=target.port)
            return response, ""
        except dns.exception.Timeout:
            problem = "timeout"
        except (OSError, dns.exception.DNSException) as exc:
            problem = f"resolver {server} failed: {exc}"
    return None, problem


def answer_records(response: dns.message.Message, record_type: str) -> list[str]:
    """The answer's records of the type, as text an assertion compares:
    names without their final dot, TXT as its joined strings."""
    wanted = dns.rdatatype.from_text(record_type)
    records: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype != wanted:
            continue  # e.g. the CNAME an A answer went through
        for rdata in rrset:
            records.append(record_text(rdata))
    return records


def record_text(rdata) -> str:
    if rdata.rdtype == dns.rdatatype.TXT:
        return b"".join(rdata.strings).decode("utf-8", "replace")
    return " ".join(part[:-1] if part.endswith(".") and len(part) > 1 else part
                    for part in rdata.to_text().split(" "))
