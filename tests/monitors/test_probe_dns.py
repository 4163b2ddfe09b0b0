"""The DNS probe, against a real DNS server on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dns.rcode
import pytest

from monitors.choices import ErrorKind
from monitors.probes import CheckSpec, run_check
from tests.support.dns_server import DnsServer, free_udp_port, start_dns_server


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = start_dns_server()
    server.add("example.test", "A", "192.0.2.1", "192.0.2.2")
    server.add("example.test", "MX", "10 mail.example.test.", "20 backup.example.test.")
    server.add("example.test", "TXT", '"v=spf1 -all"')
    server.add("www.example.test", "CNAME", "example.test.")
    server.rcodes["broken.example.test"] = dns.rcode.SERVFAIL
    server.add("slow.example.test", "A", "192.0.2.9")
    server.delays["slow.example.test"] = 1.5
    yield server
    server.stop()


def check(url: str, *assertions: dict, timeout: float = 1.0):
    return run_check(CheckSpec(url, timeout=timeout, kind="dns", assertions=list(assertions)))


def test_an_answer_with_records_of_the_type_is_up(dns_server: DnsServer) -> None:
    result = check(dns_server.url("example.test", "A"))

    assert result.ok, result.error
    assert result.latency_ms is not None
    assert dns_server.queries == [("example.test", "A")]


def test_nxdomain_is_a_dns_failure_naming_the_rcode(dns_server: DnsServer) -> None:
    result = check(dns_server.url("nowhere.example.test"))

    assert result.error_kind == ErrorKind.DNS
    assert result.error == "NXDOMAIN for nowhere.example.test A"


def test_servfail_is_a_dns_failure_naming_the_rcode(dns_server: DnsServer) -> None:
    result = check(dns_server.url("broken.example.test"))

    assert result.error_kind == ErrorKind.DNS
    assert result.error == "SERVFAIL for broken.example.test A"


def test_an_answer_without_records_of_the_type_is_a_failure(dns_server: DnsServer) -> None:
    result = check(dns_server.url("example.test", "AAAA"))

    assert result.error_kind == ErrorKind.DNS
    assert result.error == "NOERROR but no AAAA record for example.test"


def test_a_resolver_too_slow_for_the_timeout_is_a_timeout_within_the_deadline(dns_server: DnsServer) -> None:
    started = time.monotonic()
    result = check(dns_server.url("slow.example.test"), timeout=0.5)

    assert result.error_kind == ErrorKind.TIMEOUT
    assert result.error == "no answer for slow.example.test A within 0.5 s"
    assert time.monotonic() - started < 1.0


def test_a_resolver_that_is_not_there_is_a_timeout() -> None:
    result = check(f"dns://127.0.0.1:{free_udp_port()}/example.test", timeout=0.5)

    # Nothing listens: either no answer at all or an ICMP port-unreachable.
    assert not result.ok
    assert result.error_kind in (ErrorKind.TIMEOUT, ErrorKind.DNS)


def test_expected_values_compare_as_an_unordered_set(dns_server: DnsServer) -> None:
    url = dns_server.url("example.test", "A")

    same = check(url, {"source": "dns", "op": "eq", "value": ["192.0.2.2", "192.0.2.1"]})
    changed = check(url, {"source": "dns", "op": "eq", "value": ["192.0.2.1"]})

    # Order does not matter; a record too many does.
    assert same.ok, same.error
    assert changed.error_kind == ErrorKind.ASSERTION
    assert changed.error == 'dns: expected eq ["192.0.2.1"], got ["192.0.2.1", "192.0.2.2"]'


def test_mx_txt_and_cname_records_read_as_plain_text(dns_server: DnsServer) -> None:
    mx = check(dns_server.url("example.test", "MX"), {"source": "dns", "op": "contains", "value": "10 mail.example.test"})
    txt = check(dns_server.url("example.test", "TXT"), {"source": "dns", "op": "matches", "value": "^v=spf1 "})
    cname = check(dns_server.url("www.example.test", "CNAME"), {"source": "dns", "op": "eq", "value": "example.test."})

    assert mx.ok, mx.error
    assert txt.ok, txt.error
    assert cname.ok, cname.error


def test_an_invalid_dns_target_is_reported_as_invalid() -> None:
    result = check("dns://127.0.0.1/example.test?type=BOGUS")

    assert result.error_kind == ErrorKind.INVALID
    assert "unknown record type 'BOGUS'" in result.error
