"""Heartbeats, DNS, ICMP and TLS expiry through real processes: the web
(gunicorn) taking pings, beat and the central worker sweeping late
heartbeats, a probe node running DNS, ICMP and HTTPS checks, and a notify
worker delivering the alerts to a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
import requests
from django.conf import settings

from loopr import freshness
from monitors.models import CheckResult, Monitor
from notifications.models import Channel
from teams.models import ApiToken
from tests.factories import RegionFactory, UserFactory
from tests.support.dns_server import start_dns_server
from tests.support.processes import wait_for

from tests.monitors.conftest import self_signed  # noqa: F401  (a fixture)

from .test_alerts_end_to_end import FAST_RETRIES, notify_worker, receivers  # noqa: F401  (a fixture)

pytestmark = pytest.mark.e2e


def events(receiver) -> list[str]:
    # In the order they happened (two notify processes may deliver out of order).
    payloads = sorted((json.loads(body) for _headers, body in receiver.requests), key=lambda p: p["timestamp"])
    return [payload["type"] for payload in payloads]


def status_of(monitor_id: int) -> str:
    return Monitor.objects.get(pk=monitor_id).status


def test_a_heartbeat_goes_down_when_late_alerts_once_and_comes_back_with_a_ping(processes, receivers):
    user = UserFactory(username="ops")
    headers = {"Authorization": f"Token {ApiToken.objects.issue(user, 'e2e')[1]}"}
    hook = receivers(200)
    channel = Channel(owner=user, name="hook", kind="webhook", target=hook.url)
    channel.new_secret()
    channel.save()
    base = processes.web(**FAST_RETRIES)
    processes.central(**FAST_RETRIES)
    notify_worker(processes, **FAST_RETRIES)
    processes.beat(**FAST_RETRIES)
    # Beat's ticks reach the central worker (the same tick drives the sweep).
    broker = redis.Redis.from_url(settings.REDIS_URL)
    wait_for(lambda: broker.get(freshness.key(freshness.DISPATCH)) is not None, timeout=60,
             message="beat's first tick")

    created = requests.post(f"{base}/api/v1/monitors/", headers=headers, timeout=10, json={
        "name": "backup", "kind": "heartbeat", "interval": 2, "grace": 1, "channels": [channel.pk]})
    assert created.status_code == 201, created.text
    monitor_id, ping_url = created.json()["id"], created.json()["ping_url"]
    assert ping_url.startswith(base + "/ping/")

    # The first ping: up, and nothing to tell anyone (pending -> up).
    answer = requests.post(ping_url, data=b"42 files backed up", timeout=10)
    assert (answer.status_code, answer.text) == (200, "OK\n")
    assert status_of(monitor_id) == "up"

    # No ping for interval + grace (3 s): the sweep marks it down within 2 s, one alert.
    wait_for(lambda: status_of(monitor_id) == "down", timeout=10, message="the late heartbeat down")
    wait_for(lambda: events(hook) == ["monitor.down"], timeout=15, message="one down webhook")
    late = CheckResult.objects.filter(monitor_id=monitor_id, error_kind="late").order_by("scheduled_at").first()
    assert (late.checked_at - late.scheduled_at).total_seconds() < 2.5

    # A longer grace from now on, so that it is not late again while the test goes on.
    assert requests.patch(f"{base}/api/v1/monitors/{monitor_id}/", json={"grace": 600}, headers=headers,
                          timeout=10).status_code == 200

    # A ping brings it back; /fail and an exit status take it down and up again.
    # Each change is let out before the next: an alert says what changed
    # since people were last told, so a down and up between two deliveries
    # would rightly be one message, not two.
    assert requests.get(ping_url, timeout=10).status_code == 200
    assert status_of(monitor_id) == "up"
    wait_for(lambda: len(events(hook)) == 2, timeout=20, message="the up webhook")
    assert requests.get(ping_url + "/fail", timeout=10).status_code == 200
    assert status_of(monitor_id) == "down"
    wait_for(lambda: len(events(hook)) == 3, timeout=20, message="the second down webhook")
    assert requests.get(ping_url + "/0", timeout=10).status_code == 200
    assert status_of(monitor_id) == "up"
    assert requests.get(ping_url + "/999", timeout=10).status_code == 400
    wait_for(lambda: events(hook) == ["monitor.down", "monitor.up", "monitor.down", "monitor.up"], timeout=20,
             message="four webhooks in order")

    results = requests.get(f"{base}/api/v1/monitors/{monitor_id}/results/", headers=headers, timeout=10).json()
    kinds = [r["error_kind"] for r in reversed(results["results"])]
    assert kinds[:2] == ["ok", "late"] and kinds[-3:] == ["ok", "reported", "ok"], kinds


def test_dns_and_icmp_monitors_are_checked_by_a_probe_node(processes):
    dns_server = start_dns_server()
    dns_server.add("example.test", "A", "192.0.2.1")
    try:
        owner = UserFactory(username="ops")
        region = RegionFactory(name="local")
        processes.central()
        processes.probe("probe1")
        wait_for(lambda: RegionFactory(name="local").is_live, timeout=60, message="a live region")
        processes.beat()
        dns_ok = Monitor.objects.create(owner=owner, name="dns", url=dns_server.url("example.test"), interval=1,
                                        timeout=0.8, assertions=[{"source": "dns", "op": "eq", "value": "192.0.2.1"}])
        dns_missing = Monitor.objects.create(owner=owner, name="nx", url=dns_server.url("nowhere.test"), interval=1,
                                             timeout=0.8, retries=0)
        ping = Monitor.objects.create(owner=owner, name="ping", url="icmp://127.0.0.1", interval=2, timeout=1.5)

        wait_for(lambda: status_of(dns_ok.pk) == "up" and status_of(ping.pk) == "up"
                 and status_of(dns_missing.pk) == "down", timeout=30, message="dns up, nx down, icmp up")
        missing = CheckResult.objects.filter(monitor=dns_missing).first()
        assert (missing.error_kind, missing.error) == ("dns", "NXDOMAIN for nowhere.test A")
        assert CheckResult.objects.filter(monitor=ping, ok=True).exists()
    finally:
        dns_server.stop()


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_a_certificate_within_an_alert_threshold_is_alerted_once_through_the_outbox(
        processes, receivers, self_signed):
    # An HTTPS target whose self-signed certificate expires in 30 days.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed.files)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        user = UserFactory(username="ops")
        hook = receivers(200)
        channel = Channel(owner=user, name="hook", kind="webhook", target=hook.url)
        channel.new_secret()
        channel.save()
        RegionFactory(name="local")
        processes.central(**FAST_RETRIES)
        processes.probe("probe1")
        notify_worker(processes, **FAST_RETRIES)
        wait_for(lambda: RegionFactory(name="local").is_live, timeout=60, message="a live region")
        processes.beat(**FAST_RETRIES)
        monitor = Monitor.objects.create(owner=user, name="site", url=f"https://127.0.0.1:{server.server_port}/",
                                         interval=1, timeout=0.8, tls_verify=False, tls_expiry_alert_days=[60, 7])
        monitor.channels.set([channel])

        # Up (tls_verify off), and within the 60-day threshold: one alert with its days left.
        wait_for(lambda: events(hook) == ["monitor.tls_expiring"], timeout=45, message="one tls_expiring webhook")
        assert status_of(monitor.pk) == "up"
        payload = json.loads(hook.requests[0][1])
        assert "days_left 29;" in payload["data"]["details"], payload  # 30 days less the seconds since
        # Later checks of the same certificate alert no more.
        checked = CheckResult.objects.filter(monitor=monitor).count()
        wait_for(lambda: CheckResult.objects.filter(monitor=monitor).count() >= checked + 3, timeout=30,
                 message="three more checks")
        assert events(hook) == ["monitor.tls_expiring"]
        assert CheckResult.objects.filter(monitor=monitor, tls_expires_at=self_signed.not_after).exists()
    finally:
        server.shutdown()
        server.server_close()
