from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from monitors.models import CheckResult, Monitor
from tests.factories import MonitorFactory, RegionFactory, WorkerNodeFactory
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
    CheckResult.objects.create(monitor=monitors[0], region=region, node=WorkerNode.objects.get(name="probe1@eu"), scheduled_at=now,
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
        # As the add page fills them in (kind empty: taken from the URL).
        "kind": "", "assertions": "[]", "tls_verify": "on", "tls_expiry_alert_days": "[30, 14, 7, 1]",
        "grace": 300, "schedule": "", "timezone": "UTC",
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
    DeliveryAttempt.objects.create(notification=notification, outcome="failed", ok=False, status_code=451,
                                   reply="451 4.3.0 later", error="the server deferred the message")
    DeliveryAttempt.objects.create(notification=notification, outcome="delivered", ok=True, status_code=250,
                                   reply="250 queued")
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
    assert "failed 451 the server deferred the message" in page and "delivered 250 250 queued" in page


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


def test_a_token_typed_in_the_admin_is_stored_never_shown_and_kept_when_left_blank(admin_client, user):
    from notifications.models import Channel

    token = "123456789:AAE_telegram-bot-token-abcdefghij"
    response = admin_client.post("/admin/notifications/channel/add/",
                                 channel_form(user, kind="telegram", target="-1001234567890", secret=token))
    assert response.status_code == 302
    channel = Channel.objects.get()
    assert channel.secret == token
    url = f"/admin/notifications/channel/{channel.pk}/change/"
    assert token not in admin_client.get(url).content.decode()
    # Saved again with the secret field left blank: the token stays.
    renamed = channel_form(user, kind="telegram", target="-1001234567890", name="renamed")
    assert admin_client.post(url, renamed).status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.secret) == ("renamed", token)


def test_a_channel_added_in_the_admin_is_validated_like_one_from_the_api(admin_client, user):
    from notifications.models import Channel

    response = admin_client.post("/admin/notifications/channel/add/", channel_form(user, target="file:///etc/passwd"))
    assert response.status_code == 200 and b"http:// or https://" in response.content
    response = admin_client.post("/admin/notifications/channel/add/",
                                 channel_form(user, kind="email", target="not-an-email"))
    assert response.status_code == 200 and b"not a valid email address" in response.content
    assert not Channel.objects.exists()


def test_a_channels_kind_cannot_change_in_the_admin_either(admin_client, user):
    from tests.factories import ChannelFactory

    channel = ChannelFactory(owner=user, kind="email", target="ops@example.com")
    response = admin_client.post(f"/admin/notifications/channel/{channel.pk}/change/",
                                 channel_form(user, kind="webhook"))
    # The model's rule, as in the API: the form comes back with the error, nothing is saved.
    assert response.status_code == 200 and b"kind cannot change" in response.content
    channel.refresh_from_db()
    assert (channel.kind, channel.target) == ("email", "ops@example.com")


def test_switching_a_channel_back_on_in_the_admin_clears_the_reason(admin_client, user):
    from tests.factories import ChannelFactory

    channel = ChannelFactory(owner=user, kind="webhook", target="https://hooks.example.com/x")
    channel.disable("HTTP 410 Gone")
    response = admin_client.post(f"/admin/notifications/channel/{channel.pk}/change/",
                                 channel_form(user, disabled_reason="HTTP 410 Gone"))
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.enabled, channel.disabled_reason) == (True, "")


def test_the_admin_rotates_a_webhooks_secret_and_shows_the_new_one(admin_client, user):
    from tests.factories import ChannelFactory

    channel = ChannelFactory(owner=user, kind="webhook", target="https://hooks.example.com/", secret="whsec_b2xk")
    response = admin_client.post("/admin/notifications/channel/", {
        "action": "rotate_secret", "_selected_action": [channel.pk],
    }, follow=True)
    channel.refresh_from_db()
    assert channel.secret != "whsec_b2xk" and channel.secret in response.content.decode()


def test_the_admin_refuses_a_channel_of_another_team_on_a_monitor(admin_client, user, other_user):
    from tests.factories import ChannelFactory

    theirs = ChannelFactory(owner=other_user, name="theirs")
    response = admin_client.post("/admin/monitors/monitor/add/", monitor_form(user, channels=[theirs.pk]))
    assert response.status_code == 200 and b"Not of team" in response.content
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


# --- the first hour: owners, deleting, results, branding, alert reach ---------------


OWNED_ADMIN_MODELS = ["monitors/monitor", "notifications/channel", "monitors/maintenancewindow"]
STAFF_PERMISSIONS = [f"{action}_{model}" for action in ("view", "add", "change", "delete")
                     for model in ("monitor", "channel", "maintenancewindow", "checkresult", "statuschange",
                                   "notification", "incident")]


@pytest.fixture
def staff(user):
    from django.contrib.auth.models import Permission

    user.is_staff = True
    user.save()
    user.user_permissions.set(Permission.objects.filter(codename__in=STAFF_PERMISSIONS))
    return user


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def without_owner(form: dict) -> dict:
    return {name: value for name, value in form.items() if name != "owner"}


@pytest.mark.parametrize("model", OWNED_ADMIN_MODELS)
def test_an_add_form_starts_in_the_superusers_personal_team(admin_client, model):
    from teams.models import Team

    page = admin_client.get(f"/admin/{model}/add/").content.decode()
    root = get_user_model().objects.get(username="root")
    team = Team.objects.personal_for(root)
    # Saving the form as it comes files the object in the creator's own team
    # (the owner, left empty, becomes whoever saves it).
    select = page[page.index('name="team"'):]
    select = select[:select.index("</select>")]
    assert f'<option value="{team.pk}" selected>' in select


def test_a_superuser_may_still_add_a_monitor_for_someone_else(admin_client, other_user):
    response = admin_client.post("/admin/monitors/monitor/add/", monitor_form(other_user))
    assert response.status_code == 302 and other_user.monitors.get().name == "site"


@pytest.mark.parametrize("model", OWNED_ADMIN_MODELS)
def test_a_staff_user_is_not_shown_an_owner_field(staff_client, model):
    page = staff_client.get(f"/admin/{model}/add/").content.decode()
    assert 'name="owner"' not in page and 'name="name"' in page


def test_a_monitor_a_staff_user_adds_in_the_admin_is_theirs(staff_client, staff):
    response = staff_client.post("/admin/monitors/monitor/add/", without_owner(monitor_form(staff)))
    assert response.status_code == 302 and staff.monitors.get().name == "site"


def test_a_channel_a_staff_user_adds_in_the_admin_is_theirs(staff_client, staff):
    response = staff_client.post("/admin/notifications/channel/add/", without_owner(channel_form(staff)))
    assert response.status_code == 302 and staff.channels.get().name == "hook"


def test_a_window_a_staff_user_adds_in_the_admin_is_theirs(staff_client, staff):
    monitor = MonitorFactory(owner=staff)
    response = staff_client.post("/admin/monitors/maintenancewindow/add/",
                                 without_owner(window_form(staff, monitor)))
    assert response.status_code == 302 and staff.maintenance_windows.get().monitors.get() == monitor


def test_a_staff_user_is_offered_and_accepted_only_their_own_channels(staff_client, staff, other_user):
    from tests.factories import ChannelFactory

    mine = ChannelFactory(owner=staff, name="my-channel")
    theirs = ChannelFactory(owner=other_user, name="their-channel")
    page = staff_client.get("/admin/monitors/monitor/add/").content.decode()
    assert "my-channel" in page and "their-channel" not in page
    response = staff_client.post("/admin/monitors/monitor/add/",
                                 without_owner(monitor_form(staff, channels=[theirs.pk])))
    # The form comes back with the error, and nothing is stored.
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    assert not staff.monitors.exists()
    response = staff_client.post("/admin/monitors/monitor/add/", without_owner(monitor_form(staff, channels=[mine.pk])))
    assert response.status_code == 302 and list(staff.monitors.get().channels.all()) == [mine]


def test_the_admin_refuses_a_tcp_target_on_port_zero(admin_client, user):
    response = admin_client.post("/admin/monitors/monitor/add/", monitor_form(user, url="tcp://127.0.0.1:0"))
    assert response.status_code == 200 and b"from 1 to 65535" in response.content
    assert not user.monitors.exists()


@pytest.fixture
def busy_monitor(user):
    """A monitor with 500 results, a status change and a delivered alert: a
    small stand-in for 90 days of checks."""
    from datetime import timedelta

    from monitors.models import StatusChange
    from notifications.models import DeliveryAttempt
    from tests.factories import ChannelFactory, NotificationFactory

    monitor = MonitorFactory(owner=user, name="busy")
    region = RegionFactory(name="eu-west")
    start = timezone.now() - timedelta(hours=5)
    CheckResult.objects.bulk_create(
        CheckResult(monitor=monitor, region=region, node=WorkerNodeFactory(name="probe1@eu", region=region), scheduled_at=start + timedelta(seconds=30 * i),
                    checked_at=start + timedelta(seconds=30 * i), ok=True)
        for i in range(500)
    )
    StatusChange.objects.create(monitor=monitor, old="pending", new="up", at=start)
    channel = ChannelFactory(owner=user)
    notification = NotificationFactory(channel=channel, monitor=monitor, status="sent")
    DeliveryAttempt.objects.create(notification=notification, outcome="delivered", ok=True, status_code=250)
    return monitor


def rows_read_from(queries, table: str) -> list[str]:
    """Queries that read rows of `table` (counting them is fine)."""
    return [q["sql"] for q in queries
            if q["sql"].startswith("SELECT") and f'FROM "{table}"' in q["sql"] and "COUNT(" not in q["sql"]]


def assert_counted_not_listed(page: str, queries) -> None:
    # The summary names how many rows go, and no row is listed or even loaded.
    assert "Check results: 500" in page and "Status changes: 1" in page
    assert "Notifications: 1" in page and "Delivery attempts: 1" in page
    assert not re.search(r"/admin/monitors/checkresult/\d+/", page) and "Check result:" not in page
    assert rows_read_from(queries, "monitors_checkresult") == []


def test_deleting_a_monitor_counts_its_results_instead_of_listing_them(admin_client, busy_monitor):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(f"/admin/monitors/monitor/{busy_monitor.pk}/delete/")
    assert response.status_code == 200
    assert_counted_not_listed(response.content.decode(), queries.captured_queries)
    response = admin_client.post(f"/admin/monitors/monitor/{busy_monitor.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Monitor.objects.exists() and not CheckResult.objects.exists()


def test_deleting_selected_monitors_counts_their_results_instead_of_listing_them(admin_client, busy_monitor):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    selected = {"action": "delete_selected", "_selected_action": [busy_monitor.pk]}
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.post("/admin/monitors/monitor/", selected)
    assert response.status_code == 200
    assert_counted_not_listed(response.content.decode(), queries.captured_queries)
    response = admin_client.post("/admin/monitors/monitor/", {**selected, "post": "yes"})
    assert response.status_code == 302
    assert not Monitor.objects.exists() and not CheckResult.objects.exists()


def test_deleting_a_monitor_asks_for_permission_to_delete_its_results_too(staff_client, staff, busy_monitor):
    from django.contrib.auth.models import Permission

    staff.user_permissions.remove(Permission.objects.get(codename="delete_checkresult"))
    page = staff_client.get(f"/admin/monitors/monitor/{busy_monitor.pk}/delete/").content.decode()
    # As Django does for listed rows: the delete is refused, naming what is missing.
    assert "check result" in page and "following types of objects" in page
    assert "Yes, I’m sure" not in page


def test_deleting_a_channel_counts_its_notifications(admin_client, busy_monitor):
    channel = busy_monitor.notifications.get().channel
    page = admin_client.get(f"/admin/notifications/channel/{channel.pk}/delete/").content.decode()
    assert "Notifications: 1" in page and not re.search(r"/admin/notifications/notification/[-0-9a-f]+/", page)


def test_the_results_list_filters_by_the_users_own_monitors_and_by_region(staff_client, staff, other_user):
    # (Django shows a filter only when it has two choices or more.)
    mine = [MonitorFactory(owner=staff, name="mine-a"), MonitorFactory(owner=staff, name="mine-b")]
    theirs = MonitorFactory(owner=other_user, name="theirs-monitor")
    regions = [RegionFactory(name="eu-west"), RegionFactory(name="us-east")]
    page = staff_client.get("/admin/monitors/checkresult/").content.decode()
    # The sidebar lists the user's monitors, not everyone's, and the regions.
    assert all(f"?monitor__id__exact={m.pk}" in page for m in mine)
    assert f"?monitor__id__exact={theirs.pk}" not in page and "theirs-monitor" not in page
    assert all(f"?region__id__exact={r.pk}" in page for r in regions)
    # Choosing one narrows the list to it.
    now = timezone.now()
    for monitor, node in zip(mine, ["node-of-a", "node-of-b"]):
        CheckResult.objects.create(monitor=monitor, region=regions[0], node=WorkerNodeFactory(name=node), scheduled_at=now, checked_at=now,
                                   ok=True)
    page = staff_client.get(f"/admin/monitors/checkresult/?monitor__id__exact={mine[0].pk}").content.decode()
    assert "node-of-a" in page and "node-of-b" not in page


def test_a_superusers_results_list_filters_by_every_monitor(admin_client, user, other_user):
    monitors = [MonitorFactory(owner=user), MonitorFactory(owner=other_user)]
    page = admin_client.get("/admin/monitors/checkresult/").content.decode()
    assert all(f"?monitor__id__exact={m.pk}" in page for m in monitors)


def test_results_show_their_times_to_the_second(admin_client, user):
    from datetime import datetime, timezone as tz

    region = RegionFactory(name="eu-west")
    at = datetime(2026, 12, 1, 23, 14, 5, tzinfo=tz.utc)
    result = CheckResult.objects.create(monitor=MonitorFactory(owner=user), region=region, node=WorkerNodeFactory(name="n"), ok=True,
                                        scheduled_at=at, checked_at=at.replace(second=7))
    # Older than the list's default hour: asked for.
    listing = admin_client.get("/admin/monitors/checkresult/?period=all").content.decode()
    detail = admin_client.get(f"/admin/monitors/checkresult/{result.pk}/change/").content.decode()
    for page in (listing, detail):
        assert "2026-12-01 23:14:05" in page and "2026-12-01 23:14:07" in page


NO_CHANNEL = "No alert reaches anyone about"
CONSOLE_EMAIL = "Email is only printed to the console"


def test_the_monitor_pages_warn_while_a_monitor_has_no_enabled_channel(admin_client):
    from tests.factories import ChannelFactory

    root = get_user_model().objects.get(username="root")
    monitor = MonitorFactory(owner=root, name="lonely")
    for path in ("/admin/monitors/monitor/", f"/admin/monitors/monitor/{monitor.pk}/change/"):
        page = admin_client.get(path).content.decode()
        assert NO_CHANNEL in page and "lonely" in page and "/admin/notifications/channel/add/" in page
    # A switched-off channel tells no one either.
    monitor.channels.add(ChannelFactory(owner=root, enabled=False, disabled_reason="HTTP 410"))
    assert NO_CHANNEL in admin_client.get("/admin/monitors/monitor/").content.decode()
    monitor.channels.add(ChannelFactory(owner=root))
    assert NO_CHANNEL not in admin_client.get("/admin/monitors/monitor/").content.decode()


def test_the_monitor_list_shows_whether_each_monitor_is_alerting(admin_client, user):
    from tests.factories import ChannelFactory

    MonitorFactory(owner=user, name="heard").channels.add(ChannelFactory(owner=user))
    MonitorFactory(owner=user, name="unheard")
    page = admin_client.get("/admin/monitors/monitor/").content.decode()
    rows = dict(re.findall(r'>(heard|unheard)</a>.*?<td class="field-alerting"><img [^>]*alt="(True|False)"',
                           page, re.S))
    assert rows == {"heard": "True", "unheard": "False"}


@pytest.mark.parametrize("path", ["/admin/monitors/monitor/", "/admin/notifications/channel/"])
def test_the_admin_warns_that_email_only_reaches_the_console_by_default(staff_client, staff, settings, path):
    from tests.factories import ChannelFactory

    ChannelFactory(owner=staff, kind="email")
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert CONSOLE_EMAIL in staff_client.get(path).content.decode()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert CONSOLE_EMAIL not in staff_client.get(path).content.decode()


def test_without_an_email_channel_the_console_backend_is_not_worth_a_warning(staff_client, staff, settings):
    from tests.factories import ChannelFactory

    ChannelFactory(owner=staff, kind="webhook", target="https://hooks.example.com/x")
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert CONSOLE_EMAIL not in staff_client.get("/admin/monitors/monitor/").content.decode()


def test_a_monitor_added_in_the_admin_starts_with_the_users_default_channels(staff_client, staff):
    from tests.factories import ChannelFactory

    default = ChannelFactory(owner=staff, name="always", is_default=True)
    other = ChannelFactory(owner=staff, name="sometimes")
    page = staff_client.get("/admin/monitors/monitor/add/").content.decode()
    # As a monitor created through the API without a channels list.
    assert f'<option value="{default.pk}" selected>' in page
    assert f'<option value="{other.pk}">' in page
