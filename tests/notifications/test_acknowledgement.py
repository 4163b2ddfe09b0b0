"""Acknowledging an incident: by the API, by the signed link in an alert
(no login), and in the admin; who/when/how is recorded, reminders stop, the
channels that were paged are told, and a later recovery still announces up."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.utils import timezone

from monitors.announcements import announced
from monitors.choices import Event, Health
from monitors.models import Incident, Monitor
from notifications.models import Notification
from notifications.services import deliver, send_reminders
from tests.factories import ChannelFactory, IncidentFactory, MonitorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return "127.0.0.1", 0


@pytest.fixture
def outage(user):
    """A monitor down in an open incident, whose down alert went to two channels."""
    monitor = MonitorFactory(owner=user, name="shop")
    paged = [ChannelFactory(owner=user, name="ops mail"), ChannelFactory(owner=user, name="ops hook", kind="webhook",
                                                                        target="http://127.0.0.1:9/hook")]
    monitor.channels.set(paged)
    incident = IncidentFactory(monitor=monitor)
    Monitor.objects.filter(pk=monitor.pk).update(health=Health.DOWN, status=Health.DOWN, current_incident=incident)
    with transaction.atomic():
        announced.send(Monitor, monitor=monitor, event=Event.DOWN, incident=incident, degraded_only=False, details="",
                       at=timezone.now() - timedelta(minutes=5))
    return incident


def events_of(incident: Incident) -> list[str]:
    return sorted(Notification.objects.filter(incident=incident).values_list("event", flat=True))


def test_the_api_acknowledges_an_open_incident_and_tells_the_paged_channels(api, outage):
    response = api.post(f"/api/v1/incidents/{outage.pk}/acknowledge/", {"note": "rolling back"}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    # Who, when, how and why, on the incident and in the answer.
    assert (body["acknowledged_by"], body["acknowledged_via"], body["acknowledgement_note"]) == (
        "alice", "api", "rolling back")
    assert body["acknowledged_at"] is not None
    # Both channels that got the down alert learn that someone is on it.
    acks = Notification.objects.filter(incident=outage, event=Event.ACKNOWLEDGED)
    assert acks.count() == 2
    assert acks.first().context["details"] == "by alice: rolling back"


def test_an_incident_is_acknowledged_once_and_a_resolved_one_not_at_all(api, outage):
    url = f"/api/v1/incidents/{outage.pk}/acknowledge/"
    assert api.post(url, {}, format="json").status_code == 200

    again = api.post(url, {}, format="json")
    assert again.status_code == 409 and "acknowledged already" in again.json()["detail"]
    resolved = IncidentFactory(monitor=outage.monitor, resolved_at=timezone.now())
    late = api.post(f"/api/v1/incidents/{resolved.pk}/acknowledge/", {}, format="json")
    assert late.status_code == 409 and "resolved" in late.json()["detail"]
    # Nothing more was announced.
    assert events_of(outage).count("acknowledged") == 2


def test_another_users_incident_cannot_be_acknowledged(api, other_user):
    incident = IncidentFactory(monitor=MonitorFactory(owner=other_user))

    assert api.post(f"/api/v1/incidents/{incident.pk}/acknowledge/", {}, format="json").status_code == 404
    incident.refresh_from_db()
    assert incident.acknowledged_at is None


def test_a_too_long_note_is_a_400_naming_it(api, outage):
    response = api.post(f"/api/v1/incidents/{outage.pk}/acknowledge/", {"note": "x" * 1001}, format="json")

    assert response.status_code == 400 and list(response.json()) == ["note"]


def test_reminders_stop_once_the_incident_is_acknowledged(api, user, outage):
    reminding = ChannelFactory(owner=user, name="pager", reminder_interval=60)
    outage.monitor.channels.add(reminding)
    Notification.objects.create(channel=reminding, monitor=outage.monitor, incident=outage, event=Event.DOWN,
                                context={}, created_at=timezone.now() - timedelta(minutes=5))
    assert send_reminders() == 1

    api.post(f"/api/v1/incidents/{outage.pk}/acknowledge/", {}, format="json")

    # Well past the next reminder's time: none comes.
    assert send_reminders(now=timezone.now() + timedelta(hours=1)) == 0


def test_a_recovery_after_the_acknowledgement_still_announces_up(api, outage):
    api.post(f"/api/v1/incidents/{outage.pk}/acknowledge/", {}, format="json")

    with transaction.atomic():
        announced.send(Monitor, monitor=outage.monitor, event=Event.UP, incident=outage, degraded_only=False,
                       details="", at=timezone.now())

    assert events_of(outage).count("up") == 2


def ack_link_of_delivered_down(outage, httpserver, settings) -> str:
    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = True
    settings.LOOPR_PUBLIC_URL = "https://loopr.example.com"
    httpserver.expect_request("/hook").respond_with_data("ok")
    hook = outage.monitor.channels.get(kind="webhook")
    hook.target = httpserver.url_for("/hook")
    hook.save()
    notification = Notification.objects.get(channel=hook, event=Event.DOWN)
    assert deliver(str(notification.pk)).ok
    [(request, _)] = httpserver.log
    url = json.loads(request.get_data())["data"]["acknowledge_url"]
    assert url.startswith("https://loopr.example.com/ack/")
    return url.removeprefix("https://loopr.example.com")


def test_the_link_in_an_alert_acknowledges_without_a_login_and_names_where_it_was_sent(outage, httpserver, settings):
    path = ack_link_of_delivered_down(outage, httpserver, settings)
    browser = Client(enforce_csrf_checks=True)

    # Opening it (as a chat app's link preview does) only shows a button.
    page = browser.get(path)
    assert page.status_code == 200 and b"Acknowledge: I am on it" in page.content
    outage.refresh_from_db()
    assert outage.acknowledged_at is None
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    done = browser.post(path, {"note": "looking", "csrfmiddlewaretoken": token})

    assert done.status_code == 200 and b"acknowledged" in done.content
    outage.refresh_from_db()
    assert (outage.acknowledged_by, outage.acknowledged_via, outage.acknowledgement_note) == (
        "link sent to ops hook", "link", "looking")


def test_a_tampered_or_expired_link_acknowledges_nothing(outage, httpserver, settings):
    path = ack_link_of_delivered_down(outage, httpserver, settings)
    browser = Client()

    assert browser.post(path[:-3] + "x/").status_code == 404
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.LOOPR_ACK_LINK_MAX_AGE + 5)):
        assert browser.post(path).status_code == 410
    outage.refresh_from_db()
    assert outage.acknowledged_at is None


def test_a_link_stops_working_once_the_incident_resolves(outage, httpserver, settings):
    path = ack_link_of_delivered_down(outage, httpserver, settings)
    Incident.objects.filter(pk=outage.pk).update(resolved_at=timezone.now())

    page = Client().post(path)

    assert b"recovered" in page.content
    outage.refresh_from_db()
    assert outage.acknowledged_at is None


def test_an_alert_sent_after_the_acknowledgement_offers_no_link(outage, httpserver, settings, api):
    api.post(f"/api/v1/incidents/{outage.pk}/acknowledge/", {}, format="json")
    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = True
    httpserver.expect_request("/hook").respond_with_data("ok")
    hook = outage.monitor.channels.get(kind="webhook")
    hook.target = httpserver.url_for("/hook")
    hook.save()

    assert deliver(str(Notification.objects.get(channel=hook, event=Event.DOWN).pk)).ok

    [(request, _)] = httpserver.log
    assert json.loads(request.get_data())["data"]["acknowledge_url"] is None


def test_the_admin_acknowledges_the_chosen_incidents(outage):
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "", "pw"))

    response = admin.post("/admin/monitors/incident/", {"action": "acknowledge", "_selected_action": [outage.pk]})

    assert response.status_code == 302
    outage.refresh_from_db()
    assert (outage.acknowledged_by, outage.acknowledged_via) == ("root", "admin")


def test_an_email_carries_the_link_in_its_text_and_html_and_an_acknowledged_message_says_who():
    from notifications.render import render
    from tests.notifications.conftest import make_context

    down = render(make_context("down", ack_url="https://loopr.example.com/ack/t0k/"))
    acknowledged = render(make_context("acknowledged", details="by alice: rolling back"))

    assert "Acknowledge (stops reminders and escalation): https://loopr.example.com/ack/t0k/" in down.text
    assert '<a href="https://loopr.example.com/ack/t0k/">Acknowledge</a>' in down.html
    assert acknowledged.subject == "[Loopr] ACKNOWLEDGED: web (https://example.com/health) by alice: rolling back"
    # An acknowledgement offers no link of its own.
    assert acknowledged.ack_url == "" and "/ack/" not in acknowledged.text
