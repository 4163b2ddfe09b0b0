"""Ingest moves the state machine: incidents, the timeline, and the outbox
rows written in the same transaction (delivery itself is tested elsewhere)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from monitors import ingest, maintenance
from monitors.models import Incident, MaintenanceWindow, StatusChange
from notifications.models import Channel, Notification
from tests.factories import MonitorFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def checks(monitor, outcomes: str, start: int = 0, latency: float = 10.0, region: str = "local"):
    """Ingest '+' / '-' results one minute apart, as a probe node would report them."""
    for i, outcome in enumerate(outcomes, start):
        slot = T0 + timedelta(minutes=i)
        ok = outcome == "+"
        ingest.ingest_results(region, "probe@h", [{
            "monitor": monitor.pk, "slot": slot.isoformat(), "started_at": (slot + timedelta(seconds=1)).isoformat(),
            "ok": ok, "latency_ms": latency, "status_code": 200 if ok else 503,
            "error_kind": "ok" if ok else "status", "error": "" if ok else "HTTP 503, expected 200-399",
        }])
    monitor.refresh_from_db()


@pytest.fixture
def channels(user):
    return {
        "mail": Channel.objects.create(owner=user, name="ops mail", kind="email", target="ops@example.com"),
        "hook": Channel.objects.create(owner=user, name="hook", kind="webhook", target="https://hooks.example.com/x",
                                       secret="whsec_dGVzdA==", notify_degraded=True),
    }


@pytest.fixture
def monitor(user, channels):
    monitor = MonitorFactory(owner=user, retries=1, interval=60)
    monitor.channels.set(channels.values())
    return monitor


def events(**filters) -> list[tuple[str, str]]:
    return sorted(Notification.objects.filter(**filters).values_list("event", "channel__name"))


def test_a_confirmed_outage_opens_one_incident_from_the_first_failed_check_and_alerts_each_channel_once(monitor):
    checks(monitor, "+---")
    incident = Incident.objects.get()
    # It started at the first failed check, not when the retry confirmed it.
    assert incident.started_at == T0 + timedelta(minutes=1, seconds=1)
    assert incident.confirmed_at == T0 + timedelta(minutes=2, seconds=1)
    assert (incident.cause_kind, incident.cause, incident.regions) == ("status", "HTTP 503, expected 200-399", ["local"])
    assert monitor.status == "down" and monitor.current_incident_id == incident.pk
    assert events() == [("down", "hook"), ("down", "ops mail")]
    context = Notification.objects.filter(event="down").first().context
    assert context["incident"]["cause"]["message"] == "HTTP 503, expected 200-399"


def test_recovery_resolves_the_incident_and_alerts_once_with_the_outages_duration(monitor):
    checks(monitor, "+---++")
    incident = Incident.objects.get()
    assert incident.resolved_at == T0 + timedelta(minutes=4, seconds=1)
    assert events(event="up") == [("up", "hook"), ("up", "ops mail")]
    up = Notification.objects.filter(event="up").first()
    assert up.incident_id == incident.pk and up.context["incident"]["duration_seconds"] == 180.0
    # The timeline of the incident: the confirmation and the recovery.
    assert list(incident.changes.values_list("old", "new")) == [("up", "down"), ("down", "up")]


def test_a_blip_alerts_nobody_and_opens_no_incident(monitor):
    checks(monitor, "+-+-+")
    assert Incident.objects.count() == 0 and Notification.objects.count() == 0


def test_degraded_is_recorded_but_alerts_only_the_channels_that_ask_for_it(monitor):
    monitor.latency_threshold_ms = 500
    monitor.save()
    checks(monitor, "+", latency=100)
    checks(monitor, "+", start=1, latency=1500)
    assert monitor.status == "degraded"
    assert events() == [("degraded", "hook")]
    assert "1500 ms above the 500 ms threshold" in Notification.objects.get().context["details"]
    checks(monitor, "+", start=2, latency=100)
    assert events(event="up") == [("up", "hook")]
    assert StatusChange.objects.filter(new="degraded").count() == 1


def test_a_flapping_target_alerts_flapping_once_and_then_holds_alerts_until_it_settles(monitor):
    monitor.retries, monitor.flap_threshold, monitor.flap_window = 0, 3, 600
    monitor.save()
    checks(monitor, "+-+-+-+-+-+-")
    assert events(event="flapping") == [("flapping", "hook"), ("flapping", "ops mail")]
    flapping_at = Notification.objects.filter(event="flapping").first().created_at
    assert not Notification.objects.filter(created_at__gt=flapping_at).exclude(event="flapping").exists()
    # Before it was recognised (the 4th change), one outage and its recovery alerted.
    assert events(event__in=["down", "up"]) == [("down", "hook"), ("down", "ops mail"), ("up", "hook"),
                                                ("up", "ops mail")]
    # Down and quiet for a whole window: it settles, and the state it settled
    # in is announced, once.
    checks(monitor, "-" * 12, start=12)
    assert not monitor.is_flapping
    assert Notification.objects.filter(created_at__gt=flapping_at, event="down").count() == 2


def test_a_maintenance_window_suppresses_the_down_alert_which_goes_out_when_it_ends_if_still_down(monitor, user):
    window = MaintenanceWindow.objects.create(owner=user, name="deploy", kind="once",
                                              starts_at=T0, ends_at=T0 + timedelta(minutes=30))
    window.monitors.add(monitor)
    maintenance.sync_maintenance(now=T0 + timedelta(minutes=1))
    checks(monitor, "+---")
    assert monitor.status == "maintenance" and monitor.health == "down"
    assert Notification.objects.count() == 0
    # Results of the window are stored and flagged.
    assert monitor.results.filter(in_maintenance=True).count() == 4
    maintenance.sync_maintenance(now=T0 + timedelta(minutes=31))
    monitor.refresh_from_db()
    assert monitor.status == "down"
    assert events() == [("down", "hook"), ("down", "ops mail")]
    # Told once: the next failed check does not alert again.
    checks(monitor, "-", start=31)
    assert events() == [("down", "hook"), ("down", "ops mail")]


def test_a_target_that_recovers_within_the_window_alerts_nobody(monitor, user):
    window = MaintenanceWindow.objects.create(owner=user, name="deploy", kind="once",
                                              starts_at=T0, ends_at=T0 + timedelta(minutes=30))
    window.monitors.add(monitor)
    checks(monitor, "+")
    maintenance.sync_maintenance(now=T0 + timedelta(minutes=1))
    checks(monitor, "---+", start=1)
    maintenance.sync_maintenance(now=T0 + timedelta(minutes=31))
    assert Notification.objects.count() == 0
    assert Incident.objects.get().resolved_at is not None  # recorded all the same


def test_a_reminder_goes_to_channels_that_ask_while_the_monitor_stays_down(monitor, channels):
    from notifications import services as notify_services

    channels["mail"].reminder_interval = 3600
    channels["mail"].save()
    checks(monitor, "+---")
    down = Notification.objects.get(event="down", channel=channels["mail"])
    assert notify_services.send_reminders(now=down.created_at + timedelta(minutes=30)) == 0
    assert notify_services.send_reminders(now=down.created_at + timedelta(minutes=61)) == 1
    assert notify_services.send_reminders(now=down.created_at + timedelta(minutes=62)) == 0
    assert events(event="reminder") == [("reminder", "ops mail")]


def test_a_disabled_channel_is_not_alerted(monitor, channels):
    channels["hook"].enabled = False
    channels["hook"].save()
    checks(monitor, "+--")
    assert events() == [("down", "ops mail")]


def test_a_redelivered_batch_does_not_alert_again(monitor):
    checks(monitor, "+---")
    checks(monitor, "+---")  # the very same slots again
    assert Notification.objects.filter(event="down").count() == 2  # one per channel, not four
