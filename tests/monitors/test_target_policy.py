"""LOOPR_MONITOR_TARGETS at connect time (loopr.addresses.Guard through
loopr.net.connect_first), and at creation as a courtesy.

Traffic only ever goes to 127.0.0.0/8: the ranges themselves are tested on
the pure decision (tests/test_addresses.py). Where a test needs a hop that
is allowed and one that is refused, 127.0.0.2 stands in for a metadata
address (`as_metadata`), so that nothing is ever sent beyond loopback even
if the guard failed."""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from itertools import count

import pytest

from loopr import addresses
from monitors.probes import CheckSpec, run_check
from tests.support.dns_server import start_dns_server
from tests.support.targets import start_target

STAND_IN = "127.0.0.2"


@pytest.fixture
def as_metadata(monkeypatch):
    """127.0.0.2 is refused as a metadata address by no-metadata and public."""
    monkeypatch.setattr(addresses, "METADATA", addresses.METADATA | {addresses.parse(STAND_IN)})


@pytest.fixture
def resolver(monkeypatch):
    """Names of the tests' choosing, resolved to the loopback address each
    answer names (the answers are taken in turn, the last one repeated)."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo
    asked = count()

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name in answers:
            given = answers[name]
            address = given[min(next(asked), len(given) - 1)]
            assert address.startswith("127."), "tests resolve only to loopback"
            return real(address, *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
def server():
    target = start_target()
    yield target
    target.server.shutdown()
    target.server.server_close()


@pytest.fixture
def stand_in_server():
    target = start_target(STAND_IN)
    yield target
    target.server.shutdown()
    target.server.server_close()


def check(url: str, targets: str, **options):
    return run_check(CheckSpec(url=url, timeout=5, targets=targets, **options))


@pytest.mark.parametrize("targets", ["any", "no-metadata"])
def test_any_and_no_metadata_reach_a_loopback_target(server, targets):
    result = check(server.url("/"), targets)
    assert result.ok and server.hit_count("/") == 1


def test_public_refuses_a_loopback_http_target_before_sending_anything(server):
    result = check(server.url("/"), "public")
    assert not result.ok and result.error_kind == "invalid"
    assert "127.0.0.1 is not a public address, which LOOPR_MONITOR_TARGETS=public refuses" in result.error
    assert server.hit_count("/") == 0


def test_public_refuses_tcp_and_icmp_and_a_named_dns_resolver_on_loopback(server):
    host, port = server.server.server_address[:2]
    dns_server = start_dns_server()
    try:
        dns_server.add("example.test", "A", "192.0.2.1")
        for url in (f"tcp://{host}:{port}", "icmp://127.0.0.1", dns_server.url("example.test")):
            result = check(url, "public")
            assert result.error_kind == "invalid" and "LOOPR_MONITOR_TARGETS=public" in result.error, url
        assert dns_server.queries == []
        # The same DNS check under `any` is asked and answered.
        assert check(dns_server.url("example.test"), "any").ok and dns_server.queries
    finally:
        dns_server.stop()


def test_a_redirect_to_a_refused_address_is_refused_at_that_hop(as_metadata, httpserver, stand_in_server):
    httpserver.expect_request("/").respond_with_data("", status=302, headers={"Location": stand_in_server.url("/x")})
    result = check(httpserver.url_for("/"), "no-metadata")
    # The first hop was allowed and answered; the second was never sent.
    assert len(httpserver.log) == 1
    assert stand_in_server.hit_count("/x") == 0
    assert result.error_kind == "invalid" and "127.0.0.2 is a cloud metadata address" in result.error
    # Without the policy the same redirect is followed.
    assert check(httpserver.url_for("/"), "any").ok and stand_in_server.hit_count("/x") == 1


def test_a_name_that_rebinds_to_a_refused_address_is_caught_when_it_connects(as_metadata, resolver, stand_in_server):
    port = stand_in_server.server.server_address[1]
    # The first answer is an allowed loopback address with nothing listening
    # on the port; the next answer is the stand-in metadata address.
    resolver["rebind.test"] = ["127.0.0.1", STAND_IN]
    first = check(f"http://rebind.test:{port}/", "no-metadata")
    assert first.error_kind == "refused"  # allowed, and connected to: nothing listens there
    second = check(f"http://rebind.test:{port}/", "no-metadata")
    assert second.error_kind == "invalid" and "cloud metadata address" in second.error
    assert stand_in_server.hit_count("/") == 0


def test_a_name_with_an_allowed_and_a_refused_address_connects_only_to_the_allowed_one(as_metadata, monkeypatch,
                                                                                          server):
    host, port = server.server.server_address[:2]
    real = socket.getaddrinfo

    def both(name, *args, **kwargs):
        if name == "two.test":
            return real(STAND_IN, *args, **kwargs) + real(host, *args, **kwargs)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", both)
    assert check(f"http://two.test:{port}/", "no-metadata").ok and server.hit_count("/") == 1


def test_the_probe_node_applies_its_own_setting_whatever_the_check_carries(settings):
    from workers.probe_runner import spec_from_payload

    settings.LOOPR_MONITOR_TARGETS = "public"
    payload = {"monitor": 1, "slot": "2026-01-05T12:00:00+00:00", "url": "http://127.0.0.1:9/", "timeout": 5.0,
               "targets": "any"}
    _, _, spec = spec_from_payload(payload)  # a field the wire does not define is dropped
    assert spec.targets == "public"


def test_a_webhook_to_a_name_resolving_to_loopback_is_refused_when_it_connects(resolver, httpserver, settings):
    from notifications.transports import transport_for
    from notifications.transports.base import Message

    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = False
    resolver["hooks.test"] = ["127.0.0.1"]
    url = httpserver.url_for("/hook").replace("127.0.0.1", "hooks.test")
    message = Message(id="00000000-0000-0000-0000-000000000001", event="test", subject="s", text="t", html="",
                      payload={}, created_at=datetime.now(timezone.utc))
    delivery = transport_for("webhook", url).send(message)
    assert delivery.permanent and "127.0.0.1 is not a public address" in delivery.error
    assert "LOOPR_WEBHOOK_ALLOW_PRIVATE=true" in delivery.error
    assert httpserver.log == []


# --- at creation, as a courtesy --------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("policy, url", [
    ("public", "http://127.0.0.1:8080/"),
    ("public", "http://localhost/"),
    ("public", "tcp://[::1]:5432"),
    ("public", "icmp://10.0.0.1"),
    ("public", "dns://192.168.1.1/example.com?type=A"),
    ("public", "https://[::127.0.0.1]/"),
    ("public", "https://[fec0::1]/"),
    ("no-metadata", "http://169.254.169.254/latest/meta-data/"),
    ("no-metadata", "http://[::ffff:0:a9fe:a9fe]/"),
    ("no-metadata", "http://[fd00:ec2::254]/"),
])
def test_a_monitor_on_a_refused_address_is_a_400_naming_the_url(api, settings, policy, url):
    settings.LOOPR_MONITOR_TARGETS = policy
    response = api.post("/api/v1/monitors/", {"name": "x", "url": url}, format="json")
    assert response.status_code == 400 and "url" in response.json()
    assert f"LOOPR_MONITOR_TARGETS={policy}" in response.json()["url"][0]


@pytest.mark.django_db
@pytest.mark.parametrize("policy, url", [
    ("any", "http://127.0.0.1:8080/"),
    ("no-metadata", "http://10.0.0.1/"),
    ("public", "https://example.com/"),  # a name: judged by the probe when it connects
    ("public", "http://93.184.216.34/"),
])
def test_a_monitor_on_an_allowed_address_is_created(api, settings, policy, url):
    settings.LOOPR_MONITOR_TARGETS = policy
    assert api.post("/api/v1/monitors/", {"name": "x", "url": url}, format="json").status_code == 201
