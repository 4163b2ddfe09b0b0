from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from monitors.models import CheckResult, Monitor
from tests.factories import MonitorFactory, RegionFactory
from workers.models import WorkerNode

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "", "pw"))
    return client


@pytest.fixture
def data(user):
    now = timezone.now()
    region = RegionFactory(name="eu-west", last_seen_at=now)
    WorkerNode.objects.create(name="probe1@eu", region=region, version="1", concurrency=8, last_heartbeat_at=now)
    monitors = [MonitorFactory(owner=user, name="up"), MonitorFactory(owner=user, name="off", paused=True)]
    monitors[0].regions.add(region)
    CheckResult.objects.create(monitor=monitors[0], region=region, node="probe1@eu", scheduled_at=now,
                               checked_at=now, ok=False, error_kind="timeout", error="timed out")
    return monitors


@pytest.mark.parametrize(
    "path",
    [
        "/admin/monitors/monitor/",
        "/admin/monitors/monitor/?status__exact=pending&paused__exact=0",
        "/admin/monitors/monitor/?q=up",
        "/admin/monitors/checkresult/",
        "/admin/monitors/checkresult/?ok__exact=0&error_kind__exact=timeout",
        "/admin/monitors/checkresult/?monitor__id__exact={monitor}",
        "/admin/workers/region/",
        "/admin/workers/workernode/",
        "/admin/monitors/monitor/{monitor}/change/",
        "/admin/monitors/monitor/add/",
        "/admin/monitors/checkresult/{result}/change/",
        "/admin/workers/region/{region}/change/",
        "/admin/workers/workernode/{node}/change/",
    ],
)
def test_admin_pages_render_with_data(admin_client, data, path):
    ids = {
        "monitor": data[0].pk, "result": CheckResult.objects.get().pk,
        "region": RegionFactory(name="eu-west").pk, "node": WorkerNode.objects.get().pk,
    }
    response = admin_client.get(path.format(**ids))
    assert response.status_code == 200


def test_the_pause_action_pauses_the_selected_monitors(admin_client, data):
    running, _ = data
    response = admin_client.post("/admin/monitors/monitor/", {
        "action": "pause_monitors", "_selected_action": [running.pk],
    }, follow=True)
    assert response.status_code == 200 and b"Paused 1 monitor(s)." in response.content
    running.refresh_from_db()
    assert (running.paused, running.status) == (True, "paused")


def test_the_resume_action_resumes_the_selected_monitors(admin_client, data):
    _, paused = data
    paused.pause()
    paused.save()
    response = admin_client.post("/admin/monitors/monitor/", {
        "action": "resume_monitors", "_selected_action": [paused.pk],
    }, follow=True)
    assert response.status_code == 200 and b"Resumed 1 monitor(s)." in response.content
    paused.refresh_from_db()
    assert (paused.paused, paused.status) == (False, "pending")


def test_the_admin_is_closed_to_ordinary_users(user):
    client = Client()
    client.force_login(user)
    response = client.get("/admin/monitors/monitor/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def monitor_form(owner, **changes) -> dict:
    return {
        "owner": owner.pk, "name": "site", "url": "http://example.com/", "interval": 60, "timeout": 5,
        "retries": 1, "method": "GET", "headers": "{}", "body": "", "expected_status": "200-399",
        "keyword": "", "follow_redirects": "on", "recovery_checks": 1, "flap_threshold": 5, "flap_window": 600,
        **changes,
    }


def test_a_monitor_added_in_the_admin_is_validated_like_one_from_the_api(admin_client, user):
    response = admin_client.post("/admin/monitors/monitor/add/", monitor_form(user, timeout=60))
    # The form comes back with the error, and nothing is stored.
    assert response.status_code == 200 and b"below the interval" in response.content
    assert not user.monitors.exists()
    response = admin_client.post("/admin/monitors/monitor/add/", monitor_form(user))
    assert response.status_code == 302 and user.monitors.get().status == "pending"


def test_ticking_paused_in_the_admin_form_pauses_and_unticking_resumes(admin_client, data):
    monitor, _ = data
    monitor.status = "down"
    monitor.save()
    url = f"/admin/monitors/monitor/{monitor.pk}/change/"
    admin_client.post(url, monitor_form(monitor.owner, name=monitor.name, paused="on"))
    monitor.refresh_from_db()
    assert (monitor.paused, monitor.status) == (True, "paused")
    admin_client.post(url, monitor_form(monitor.owner, name=monitor.name))
    monitor.refresh_from_db()
    assert (monitor.paused, monitor.status) == (False, "pending")


# --- alerting: channels, the delivery log, incidents, maintenance windows -----------


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return "127.0.0.1", 0


@pytest.fixture
def alerting(user):
    """One of each alerting row, linked as the state machine would link them."""
    from monitors.models import StatusChange
    from notifications.models import DeliveryAttempt
    from tests.factories import ChannelFactory, IncidentFactory, MaintenanceWindowFactory, NotificationFactory

    monitor = MonitorFactory(owner=user, name="shop", status="down", health="down")
    channel = ChannelFactory(owner=user, name="ops mail", target="ops@example.com")
    monitor.channels.add(channel)
    incident = IncidentFactory(monitor=monitor, cause="HTTP 503, expected 200-399")
    monitor.current_incident = incident
    monitor.save()
    StatusChange.objects.create(monitor=monitor, incident=incident, old="up", new="down", at=incident.confirmed_at,
                                cause="HTTP 503, expected 200-399", region="local")
    notification = NotificationFactory(channel=channel, monitor=monitor, incident=incident, status="sent",
                                       attempts=2)
    DeliveryAttempt.objects.create(notification=notification, ok=False, status_code=451, reply="451 4.3.0 later",
                                   error="the server deferred the message")
    DeliveryAttempt.objects.create(notification=notification, ok=True, status_code=250, reply="250 queued")
    window = MaintenanceWindowFactory(owner=user, monitors=[monitor])
    return {"monitor": monitor, "channel": channel, "incident": incident, "notification": notification,
            "window": window}


@pytest.mark.parametrize(
    "path",
    [
        "/admin/notifications/channel/",
        "/admin/notifications/channel/?kind__exact=email&enabled__exact=1",
        "/admin/notifications/channel/{channel}/change/",
        "/admin/notifications/channel/add/",
        "/admin/notifications/notification/",
        "/admin/notifications/notification/?status__exact=sent&event__exact=down",
        "/admin/notifications/notification/?channel__id__exact={channel}",
        "/admin/notifications/notification/?incident__id__exact={incident}",
        "/admin/notifications/notification/{notification}/change/",
        "/admin/monitors/incident/",
        "/admin/monitors/incident/?state=open",
        "/admin/monitors/incident/?state=resolved",
        "/admin/monitors/incident/?monitor__id__exact={monitor}",
        "/admin/monitors/incident/{incident}/change/",
        "/admin/monitors/maintenancewindow/",
        "/admin/monitors/maintenancewindow/?kind__exact=once",
        "/admin/monitors/maintenancewindow/{window}/change/",
        "/admin/monitors/maintenancewindow/add/",
        "/admin/monitors/monitor/?health__exact=down",
        "/admin/monitors/monitor/{monitor}/change/",
    ],
)
def test_alerting_admin_pages_render_with_data(admin_client, alerting, path):
    ids = {name: obj.pk for name, obj in alerting.items()}
    response = admin_client.get(path.format(**ids))
    assert response.status_code == 200


def test_an_incidents_page_shows_its_timeline_and_who_was_told_when(admin_client, alerting):
    page = admin_client.get(f"/admin/monitors/incident/{alerting['incident'].pk}/change/").content.decode()
    # The timeline, and the delivery log: the channel, and every attempt with its outcome and reply.
    assert "HTTP 503, expected 200-399" in page and "ops mail" in page
    assert "failed 451 the server deferred the message" in page and "ok 250 250 queued" in page


def test_a_monitors_page_shows_its_current_incident_and_how_long_it_lasts(admin_client, alerting):
    page = admin_client.get(f"/admin/monitors/monitor/{alerting['monitor'].pk}/change/").content.decode()
    assert f"/admin/monitors/incident/{alerting['incident'].pk}/change/" in page and "10 min" in page


def test_the_channel_test_action_sends_a_marked_test_message(admin_client, user, httpserver, settings):
    from notifications.models import Notification
    from tests.factories import ChannelFactory

    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = True
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    channel = ChannelFactory(owner=user, name="hook", kind="webhook", target=httpserver.url_for("/hook"))
    response = admin_client.post("/admin/notifications/channel/", {
        "action": "send_test_message", "_selected_action": [channel.pk],
    }, follow=True)
    assert response.status_code == 200 and b"test message sent" in response.content
    notification = Notification.objects.get()
    assert (notification.event, notification.status, notification.attempts) == ("test", "sent", 1)
    assert len(httpserver.log) == 1


def test_a_failed_channel_test_is_reported_as_an_error(admin_client, user, httpserver, settings):
    from tests.factories import ChannelFactory

    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = True
    httpserver.expect_request("/hook", method="POST").respond_with_data("nope", status=404)
    channel = ChannelFactory(owner=user, name="hook", kind="webhook", target=httpserver.url_for("/hook"))
    response = admin_client.post("/admin/notifications/channel/", {
        "action": "send_test_message", "_selected_action": [channel.pk],
    }, follow=True)
    assert b"test message failed: 404" in response.content


def channel_form(owner, **changes) -> dict:
    return {"owner": owner.pk, "name": "hook", "kind": "webhook", "target": "https://hooks.example.com/x",
            "enabled": "on", "disabled_reason": "", "reminder_interval": "", **changes}


def test_a_webhook_added_in_the_admin_gets_a_secret_shown_once(admin_client, user):
    from notifications.models import Channel

    response = admin_client.post("/admin/notifications/channel/add/", channel_form(user), follow=True)
    assert response.status_code == 200
    channel = Channel.objects.get()
    assert channel.secret.startswith("whsec_") and channel.secret in response.content.decode()
    page = admin_client.get(f"/admin/notifications/channel/{channel.pk}/change/").content.decode()
    assert channel.secret not in page


def test_a_channel_added_in_the_admin_is_validated_like_one_from_the_api(admin_client, user):
    from notifications.models import Channel

    response = admin_client.post("/admin/notifications/channel/add/", channel_form(user, target="file:///etc/passwd"))
    assert response.status_code == 200 and b"http:// or https://" in response.content
    response = admin_client.post("/admin/notifications/channel/add/",
                                 channel_form(user, kind="email", target="not-an-email"))
    assert response.status_code == 200 and b"not a valid email address" in response.content
    assert not Channel.objects.exists()


def test_the_admin_rotates_a_webhooks_secret_and_shows_the_new_one(admin_client, user):
    from tests.factories import ChannelFactory

    channel = ChannelFactory(owner=user, kind="webhook", target="https://hooks.example.com/", secret="whsec_b2xk")
    response = admin_client.post("/admin/notifications/channel/", {
        "action": "rotate_secret", "_selected_action": [channel.pk],
    }, follow=True)
    channel.refresh_from_db()
    assert channel.secret != "whsec_b2xk" and channel.secret in response.content.decode()


def test_the_admin_refuses_another_users_channel_on_a_monitor(admin_client, user, other_user):
    from tests.factories import ChannelFactory

    theirs = ChannelFactory(owner=other_user, name="theirs")
    response = admin_client.post("/admin/monitors/monitor/add/", monitor_form(user, channels=[theirs.pk]))
    assert response.status_code == 200 and b"Not owned by" in response.content
    assert not user.monitors.exists()


def window_form(owner, monitor, **changes) -> dict:
    return {"owner": owner.pk, "name": "upgrade", "monitors": [monitor.pk], "kind": "once", "timezone": "UTC",
            "starts_at_0": "2030-01-01", "starts_at_1": "10:00", "ends_at_0": "2030-01-01", "ends_at_1": "11:00",
            "weekdays": "[]", "cron": "", **changes}


def test_a_window_added_in_the_admin_is_validated_by_the_model(admin_client, user):
    from monitors.models import MaintenanceWindow

    monitor = MonitorFactory(owner=user)
    response = admin_client.post("/admin/monitors/maintenancewindow/add/",
                                 window_form(user, monitor, ends_at_1="09:00"))
    assert response.status_code == 200 and b"must end after it starts" in response.content
    assert not MaintenanceWindow.objects.exists()
    response = admin_client.post("/admin/monitors/maintenancewindow/add/", window_form(user, monitor))
    assert response.status_code == 302 and MaintenanceWindow.objects.get().monitors.get() == monitor


def test_a_staff_user_sees_in_the_admin_only_what_the_api_shows_them(user, other_user):
    from django.contrib.auth.models import Permission

    from notifications.models import Channel
    from tests.factories import MonitorFactory

    user.is_staff = True
    user.save()
    user.user_permissions.set(Permission.objects.filter(codename__in=[
        "view_monitor", "view_checkresult", "view_incident", "view_channel", "view_notification",
        "view_maintenancewindow",
    ]))
    mine = MonitorFactory(owner=user, name="mine-monitor")
    MonitorFactory(owner=other_user, name="theirs-monitor")
    Channel.objects.create(owner=other_user, name="theirs-channel", kind="email", target="b@example.com")
    client = Client()
    client.force_login(user)
    page = client.get("/admin/monitors/monitor/").content.decode()
    assert "mine-monitor" in page and "theirs-monitor" not in page
    assert "theirs-channel" not in client.get("/admin/notifications/channel/").content.decode()
    assert client.get(f"/admin/monitors/monitor/{mine.pk}/change/").status_code == 200
    theirs = Monitor.objects.get(name="theirs-monitor")
    assert client.get(f"/admin/monitors/monitor/{theirs.pk}/change/").status_code == 302  # "doesn't exist"
