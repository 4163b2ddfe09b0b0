"""TLS: `tls_verify` off checks a self-signed target without failing on it,
and `tls_expiry_alert_days` alerts once per certificate and threshold through
the outbox, recorded so that neither a later check nor a restart repeats it."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from monitors import ingest
from monitors.choices import ErrorKind
from monitors.models import Monitor
from monitors.probes import CheckSpec, run_check
from notifications.models import Notification
from notifications.render import render
from tests.factories import ChannelFactory, MonitorFactory

from .conftest import RawServer, SelfSigned, read_request, respond

StartServer = Callable[..., RawServer]


def serve_ok(conn: socket.socket, server: RawServer) -> None:
    read_request(conn)
    respond(conn, body=b'{"status": "ok"}')


# --- the probe -------------------------------------------------------------


def test_with_tls_verify_off_a_self_signed_target_is_up_and_its_expiry_recorded(
    raw_server: StartServer, self_signed: SelfSigned
) -> None:
    server = raw_server(serve_ok, tls=self_signed.context)

    verified = run_check(CheckSpec(server.url(), timeout=2))
    unverified = run_check(CheckSpec(server.url(), timeout=2, tls_verify=False))

    # The same target: a TLS failure when verified, up when not; both know the expiry.
    assert verified.error_kind == ErrorKind.TLS
    assert unverified.ok, unverified.error
    assert unverified.tls_expires_at == self_signed.not_after
    assert verified.tls_expires_at == self_signed.not_after


def test_tls_verify_off_for_one_check_does_not_loosen_the_next(
    raw_server: StartServer, self_signed: SelfSigned
) -> None:
    server = raw_server(serve_ok, tls=self_signed.context)

    run_check(CheckSpec(server.url(), timeout=2, tls_verify=False))
    after = run_check(CheckSpec(server.url(), timeout=2))

    assert after.error_kind == ErrorKind.TLS


def test_a_tls_days_assertion_reads_the_served_certificate(
    raw_server: StartServer, self_signed: SelfSigned
) -> None:
    server = raw_server(serve_ok, tls=self_signed.context)  # expires in 30 days

    fine = run_check(CheckSpec(server.url(), timeout=2, tls_verify=False,
                               assertions=[{"source": "tls_days", "op": "gt", "value": 7}]))
    strict = run_check(CheckSpec(server.url(), timeout=2, tls_verify=False,
                                 assertions=[{"source": "tls_days", "op": "gt", "value": 45}]))

    assert fine.ok, fine.error
    assert strict.error_kind == ErrorKind.ASSERTION
    prefix = "tls_days: expected gt 45, got "
    assert strict.error.startswith(prefix)
    assert 29 < float(strict.error.removeprefix(prefix)) <= 30


# --- the alerts ------------------------------------------------------------


def https_result(monitor: Monitor, expires_in: timedelta, slot=None) -> dict:
    slot = slot or timezone.now()
    return {
        "monitor": monitor.pk, "slot": slot.isoformat(), "started_at": slot.isoformat(), "ok": True,
        "latency_ms": 10.0, "status_code": 200, "error_kind": "ok", "error": "",
        "tls_expires_at": (timezone.now() + expires_in).replace(microsecond=0).isoformat(),
    }


@pytest.fixture
def watched(db) -> Monitor:
    monitor = MonitorFactory(url="https://127.0.0.1/", retries=0)
    monitor.channels.set([ChannelFactory(owner=monitor.owner)])
    return monitor


def expiring(monitor: Monitor) -> list[Notification]:
    return list(Notification.objects.filter(monitor=monitor, event="tls_expiring").order_by("created_at"))


@pytest.mark.django_db
def test_a_certificate_crossing_a_threshold_alerts_once(watched: Monitor) -> None:
    expires = timedelta(days=13, hours=12)
    first = https_result(watched, expires)
    ingest.ingest_results("local", "n@h", [first])
    later = [https_result(watched, expires, slot=timezone.now() + timedelta(seconds=s)) for s in (60, 120)]
    ingest.ingest_results("local", "n@h", later)
    # Loaded afresh, as after a restart: the record is in the database.
    ingest.ingest_results("local", "n@h", [https_result(watched, expires, slot=timezone.now() + timedelta(hours=1))])

    alerts = expiring(watched)
    assert len(alerts) == 1
    assert "days_left 13" in alerts[0].context["details"]
    assert "alert threshold 14 days" in alerts[0].context["details"]
    watched.refresh_from_db()
    assert watched.tls_alerted_days == 14


@pytest.mark.django_db
def test_a_certificate_first_seen_past_several_thresholds_alerts_once_for_the_lowest(watched: Monitor) -> None:
    ingest.ingest_results("local", "n@h", [https_result(watched, timedelta(days=5))])

    alerts = expiring(watched)
    assert len(alerts) == 1
    assert "alert threshold 7 days" in alerts[0].context["details"]


@pytest.mark.django_db
def test_each_lower_threshold_alerts_again_and_a_renewed_certificate_starts_afresh(watched: Monitor) -> None:
    slots = iter(timezone.now() + timedelta(minutes=m) for m in range(10))
    for days in (20, 13, 6):  # 30, then 14, then 7
        ingest.ingest_results("local", "n@h", [https_result(watched, timedelta(days=days), slot=next(slots))])
    assert len(expiring(watched)) == 3

    # Renewed: 90 days left, nothing to say; later that one crosses 30.
    ingest.ingest_results("local", "n@h", [https_result(watched, timedelta(days=90), slot=next(slots))])
    assert len(expiring(watched)) == 3
    watched.refresh_from_db()
    assert watched.tls_alerted_days is None


@pytest.mark.django_db
def test_an_empty_threshold_list_never_alerts(watched: Monitor) -> None:
    Monitor.objects.filter(pk=watched.pk).update(tls_expiry_alert_days=[])

    ingest.ingest_results("local", "n@h", [https_result(watched, timedelta(days=1))])

    assert expiring(watched) == []


@pytest.mark.django_db
def test_the_alert_renders_with_days_left_and_the_expiry_date(watched: Monitor) -> None:
    ingest.ingest_results("local", "n@h", [https_result(watched, timedelta(days=6, hours=2))])
    notification = expiring(watched)[0]

    message = render({**notification.context, "id": str(notification.pk)})

    assert message.subject.startswith(f"[Loopr] TLS EXPIRING: {watched.name} (https://127.0.0.1/)")
    assert "in 6 days" in message.text
    assert message.payload["type"] == "monitor.tls_expiring"
    assert "days_left 6" in message.payload["data"]["details"]


@pytest.mark.django_db
@pytest.mark.parametrize("days", [[0], [400], ["30"], "30", [1] * 11])
def test_bad_alert_thresholds_are_a_400_naming_the_field(api, days) -> None:
    response = api.post("/api/v1/monitors/", {"name": "m", "url": "https://example.com/",
                                              "tls_expiry_alert_days": days}, format="json")

    assert response.status_code == 400
    assert "tls_expiry_alert_days" in response.data
