from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from monitors.models import Incident, MaintenanceWindow, Monitor, StatusChange
from tests.factories import ChannelFactory, IncidentFactory, MaintenanceWindowFactory, MonitorFactory

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"
INCIDENTS = "/api/v1/incidents/"
WINDOWS = "/api/v1/maintenance-windows/"
NEW_MONITOR = {"name": "shop", "url": "https://shop.example/health"}
HUGE = 10**30

# Field names scripts rely on: renaming one breaks them.
ALERT_FIELDS = {"channels", "recovery_checks", "latency_threshold_ms", "flap_threshold", "flap_window", "status",
                "health", "is_flapping", "in_maintenance", "current_incident"}
INCIDENT_FIELDS = {"id", "monitor", "started_at", "confirmed_at", "resolved_at", "duration_seconds", "cause",
                   "cause_kind", "regions", "is_open"}
WINDOW_FIELDS = {"id", "name", "kind", "starts_at", "ends_at", "weekdays", "start_time", "cron", "duration_minutes",
                 "timezone", "monitors", "active"}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- monitors: alert settings and channels ---------------------------------------------


def test_a_monitor_takes_its_alert_settings_and_channels(api, user):
    ops, hook = ChannelFactory(owner=user), ChannelFactory(owner=user, kind="webhook", target="https://x.example/")
    response = api.post(MONITORS, {**NEW_MONITOR, "channels": [ops.pk, hook.pk], "recovery_checks": 3,
                                   "latency_threshold_ms": 800, "flap_threshold": 4, "flap_window": 900},
                        format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert ALERT_FIELDS <= body.keys()
    assert sorted(body["channels"]) == sorted([ops.pk, hook.pk])
    assert (body["recovery_checks"], body["latency_threshold_ms"], body["flap_threshold"], body["flap_window"]) == (
        3, 800, 4, 900)
    # A new monitor has no verdict and no incident yet.
    assert (body["health"], body["is_flapping"], body["in_maintenance"], body["current_incident"]) == (
        "pending", False, False, None)
    monitor = Monitor.objects.get(pk=body["id"])
    assert set(monitor.channels.all()) == {ops, hook}


def test_another_users_channel_cannot_be_subscribed(api, user, other_user):
    theirs = ChannelFactory(owner=other_user)
    response = api.post(MONITORS, {**NEW_MONITOR, "channels": [theirs.pk]}, format="json")
    # 400 on channels, naming the id as unknown, and nothing created.
    assert response.status_code == 400
    assert list(response.json()) == ["channels"] and str(theirs.pk) in response.json()["channels"][0]
    assert not Monitor.objects.exists()
    mine = MonitorFactory(owner=user)
    response = api.patch(f"{MONITORS}{mine.pk}/", {"channels": [theirs.pk]}, format="json")
    assert response.status_code == 400 and "channels" in response.json()
    assert not mine.channels.exists()


def test_a_superuser_cannot_wire_one_users_monitor_to_another_users_channel(user, other_user):
    root = type(user).objects.create_superuser("root", "", "pw")
    client = APIClient()
    client.force_login(root)
    monitor, theirs = MonitorFactory(owner=user), ChannelFactory(owner=other_user)
    response = client.patch(f"{MONITORS}{monitor.pk}/", {"channels": [theirs.pk]}, format="json")
    assert response.status_code == 400 and "channels" in response.json()


def test_default_channels_are_subscribed_only_when_channels_are_omitted(api, user, other_user):
    default = ChannelFactory(owner=user, is_default=True)
    ChannelFactory(owner=user, is_default=False)
    ChannelFactory(owner=other_user, is_default=True)
    omitted = api.post(MONITORS, NEW_MONITOR, format="json").json()
    assert omitted["channels"] == [default.pk]
    empty = api.post(MONITORS, {**NEW_MONITOR, "channels": []}, format="json").json()
    assert empty["channels"] == []
    # Later edits that do not mention channels leave them alone.
    patched = api.patch(f"{MONITORS}{empty['id']}/", {"name": "renamed"}, format="json").json()
    assert patched["channels"] == []


def test_channels_can_be_replaced_and_cleared(api, user):
    a, b = ChannelFactory(owner=user), ChannelFactory(owner=user)
    monitor = MonitorFactory(owner=user)
    monitor.channels.set([a])
    assert api.patch(f"{MONITORS}{monitor.pk}/", {"channels": [b.pk, b.pk]}, format="json").json()["channels"] == [
        b.pk]
    assert api.patch(f"{MONITORS}{monitor.pk}/", {"channels": []}, format="json").json()["channels"] == []


def test_a_monitor_shows_its_open_incident_and_how_long_it_has_lasted(api, user):
    monitor = MonitorFactory(owner=user, status="down", health="down")
    started = timezone.now() - timedelta(minutes=30)
    incident = IncidentFactory(monitor=monitor, started_at=started, cause="HTTP 503, expected 200-399")
    monitor.current_incident = incident
    monitor.save()
    body = api.get(f"{MONITORS}{monitor.pk}/").json()
    assert (body["status"], body["health"]) == ("down", "down")
    current = body["current_incident"]
    assert (current["id"], current["cause"], current["cause_kind"]) == (incident.pk, "HTTP 503, expected 200-399",
                                                                        "status")
    assert 30 * 60 <= current["duration_seconds"] < 31 * 60
    assert {"started_at", "confirmed_at"} <= current.keys()


def test_alert_state_is_read_only(api, user):
    monitor = MonitorFactory(owner=user)
    incident = IncidentFactory(monitor=monitor)
    api.patch(f"{MONITORS}{monitor.pk}/", {"health": "down", "is_flapping": True, "in_maintenance": True,
                                           "current_incident": incident.pk}, format="json")
    monitor.refresh_from_db()
    assert (monitor.health, monitor.is_flapping, monitor.in_maintenance, monitor.current_incident) == (
        "pending", False, False, None)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"channels": "1"}, "channels"),
        ({"channels": 1}, "channels"),
        ({"channels": [None]}, "channels"),
        ({"channels": ["abc"]}, "channels"),
        ({"channels": [1.5]}, "channels"),
        ({"channels": [True]}, "channels"),
        ({"channels": [HUGE]}, "channels"),
        ({"channels": [-1]}, "channels"),
        ({"channels": [{"id": 1}]}, "channels"),
        ({"channels": {"1": 1}}, "channels"),
        ({"channels": list(range(1, 1100))}, "channels"),
        ({"recovery_checks": 0}, "recovery_checks"),
        ({"recovery_checks": HUGE}, "recovery_checks"),
        ({"latency_threshold_ms": -5}, "latency_threshold_ms"),
        ({"latency_threshold_ms": "fast"}, "latency_threshold_ms"),
        ({"flap_threshold": 0}, "flap_threshold"),
        ({"flap_window": -1}, "flap_window"),
        ({"flap_window": HUGE}, "flap_window"),
    ],
    ids=repr,
)
def test_a_bad_alert_setting_is_a_400_naming_the_field(api, change, field):
    response = api.post(MONITORS, {**NEW_MONITOR, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Monitor.objects.exists()


# --- incidents ------------------------------------------------------------------------


def test_incidents_are_listed_newest_first_with_the_documented_fields(api, user):
    monitor = MonitorFactory(owner=user)
    now = timezone.now().replace(microsecond=0)
    older = IncidentFactory(monitor=monitor, started_at=now - timedelta(hours=2),
                            resolved_at=now - timedelta(hours=2) + timedelta(minutes=7, seconds=30))
    newer = IncidentFactory(monitor=monitor, started_at=now - timedelta(minutes=5), regions=["eu-west", "us-east"])
    body = api.get(INCIDENTS).json()
    assert [i["id"] for i in body["results"]] == [newer.pk, older.pk]
    listed = body["results"][1]
    assert INCIDENT_FIELDS <= listed.keys()
    # A resolved incident lasted from its first failed check to recovery.
    assert (listed["monitor"], listed["is_open"], listed["duration_seconds"]) == (monitor.pk, False, 450.0)
    assert (listed["cause"], listed["cause_kind"]) == ("HTTP 503, expected 200-399", "status")
    assert body["results"][0]["regions"] == ["eu-west", "us-east"] and body["results"][0]["is_open"] is True
    assert body["results"][0]["resolved_at"] is None


def test_an_incident_carries_its_timeline(api, user):
    monitor = MonitorFactory(owner=user)
    incident = IncidentFactory(monitor=monitor)
    at = incident.started_at
    StatusChange.objects.create(monitor=monitor, incident=incident, old="up", new="down", at=at + timedelta(minutes=1),
                                cause="HTTP 503", region="eu-west")
    StatusChange.objects.create(monitor=monitor, incident=incident, old="down", new="up", at=at + timedelta(minutes=9))
    StatusChange.objects.create(monitor=monitor, old="pending", new="up", at=at - timedelta(days=1))  # another story
    body = api.get(f"{INCIDENTS}{incident.pk}/").json()
    assert [(c["old"], c["new"], c["cause"], c["region"]) for c in body["timeline"]] == [
        ("up", "down", "HTTP 503", "eu-west"), ("down", "up", "", "")]
    assert "timeline" not in api.get(INCIDENTS).json()["results"][0]


@pytest.mark.parametrize("query, expected", [
    ("monitor={a}", {"a-old", "a-open"}),
    ("monitor={b}", {"b-old"}),
    ("open=true", {"a-open"}),
    ("open=false", {"a-old", "b-old"}),
    ("monitor={a}&open=false", {"a-old"}),
    ("since={t}", {"a-open"}),
    ("until={t}", {"a-old", "b-old"}),
])
def test_incidents_filter_by_monitor_open_and_time(api, user, query, expected):
    a, b = MonitorFactory(owner=user), MonitorFactory(owner=user)
    now = timezone.now().replace(microsecond=0)
    day_ago = now - timedelta(days=1)
    made = {
        "a-old": IncidentFactory(monitor=a, started_at=day_ago, resolved_at=day_ago + timedelta(minutes=3)),
        "a-open": IncidentFactory(monitor=a, started_at=now - timedelta(minutes=3)),
        "b-old": IncidentFactory(monitor=b, started_at=day_ago, resolved_at=day_ago + timedelta(minutes=3)),
    }
    names = {incident.pk: name for name, incident in made.items()}
    response = api.get(f"{INCIDENTS}?" + query.format(a=a.pk, b=b.pk, t=iso(now - timedelta(hours=1))))
    assert response.status_code == 200, response.json()
    assert {names[i["id"]] for i in response.json()["results"]} == expected


def test_another_users_incidents_are_neither_listed_nor_readable(api, other_user):
    theirs = IncidentFactory(monitor=MonitorFactory(owner=other_user))
    assert api.get(INCIDENTS).json()["results"] == []
    assert api.get(f"{INCIDENTS}?monitor={theirs.monitor_id}").json()["results"] == []
    assert api.get(f"{INCIDENTS}{theirs.pk}/").status_code == 404


def test_incidents_are_read_only(api, user):
    incident = IncidentFactory(monitor=MonitorFactory(owner=user))
    assert api.post(INCIDENTS, {}, format="json").status_code == 405
    assert api.patch(f"{INCIDENTS}{incident.pk}/", {"cause": "x"}, format="json").status_code == 405
    assert api.delete(f"{INCIDENTS}{incident.pk}/").status_code == 405
    assert Incident.objects.get().cause == "HTTP 503, expected 200-399"


# --- maintenance windows ----------------------------------------------------------------


def one_off(monitor_list, **changes) -> dict:
    now = timezone.now()
    return {"name": "upgrade", "kind": "once", "starts_at": iso(now - timedelta(minutes=5)),
            "ends_at": iso(now + timedelta(hours=1)), "monitors": [m.pk for m in monitor_list], **changes}


def test_a_user_creates_a_one_off_window_that_is_active_now(api, user):
    monitor = MonitorFactory(owner=user)
    response = api.post(WINDOWS, one_off([monitor]), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert WINDOW_FIELDS <= body.keys()
    assert (body["monitors"], body["active"], body["timezone"]) == ([monitor.pk], True, "UTC")
    window = MaintenanceWindow.objects.get()
    assert window.owner == user and list(window.monitors.all()) == [monitor]


def test_weekly_and_cron_windows_are_accepted(api, user):
    monitor = MonitorFactory(owner=user)
    weekly = api.post(WINDOWS, {"name": "backups", "kind": "weekly", "weekdays": [6, 0, 6], "start_time": "02:00",
                                "duration_minutes": 30, "timezone": "Europe/Zurich", "monitors": [monitor.pk]},
                      format="json")
    assert weekly.status_code == 201, weekly.json()
    assert weekly.json()["weekdays"] == [0, 6]
    cron = api.post(WINDOWS, {"name": "nightly", "kind": "cron", "cron": "0 3 * * 1-5", "duration_minutes": 15,
                              "monitors": [monitor.pk]}, format="json")
    assert cron.status_code == 201, cron.json()


def test_a_window_can_be_moved_and_deleted(api, user):
    monitor = MonitorFactory(owner=user)
    window = MaintenanceWindowFactory(owner=user, monitors=[monitor])
    later = timezone.now() + timedelta(days=1)
    response = api.patch(f"{WINDOWS}{window.pk}/", {"starts_at": iso(later), "ends_at": iso(later + timedelta(hours=1))},
                         format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["active"] is False
    # A change that only moves the end is checked against the stored start.
    response = api.patch(f"{WINDOWS}{window.pk}/", {"ends_at": iso(later - timedelta(hours=1))}, format="json")
    assert response.status_code == 400 and "ends_at" in response.json()
    assert api.delete(f"{WINDOWS}{window.pk}/").status_code == 204


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"ends_at": "{before}"}, "ends_at"),
        ({"ends_at": None}, "ends_at"),
        ({"kind": "weekly", "start_time": "02:00", "duration_minutes": 30}, "weekdays"),
        ({"kind": "weekly", "weekdays": [], "start_time": "02:00", "duration_minutes": 30}, "weekdays"),
        ({"kind": "weekly", "weekdays": [7], "start_time": "02:00", "duration_minutes": 30}, "weekdays"),
        ({"kind": "weekly", "weekdays": ["monday"], "start_time": "02:00", "duration_minutes": 30}, "weekdays"),
        ({"kind": "weekly", "weekdays": [True], "start_time": "02:00", "duration_minutes": 30}, "weekdays"),
        ({"kind": "weekly", "weekdays": [1], "duration_minutes": 30}, "start_time"),
        # A time of day is hh:mm[:ss[.ffffff]], as the schema says and the API writes.
        ({"kind": "weekly", "weekdays": [1], "start_time": "0200", "duration_minutes": 30}, "start_time"),
        ({"kind": "weekly", "weekdays": [1], "start_time": "02:00+01:00", "duration_minutes": 30}, "start_time"),
        ({"kind": "weekly", "weekdays": [1], "start_time": "2:00", "duration_minutes": 30}, "start_time"),
        ({"kind": "weekly", "weekdays": [1], "start_time": "02:00"}, "duration_minutes"),
        ({"kind": "cron", "cron": "every night", "duration_minutes": 30}, "cron"),
        ({"kind": "cron", "cron": "61 * * * *", "duration_minutes": 30}, "cron"),
        ({"kind": "cron", "cron": "* * * * * *", "duration_minutes": 30}, "cron"),
        ({"kind": "cron", "cron": "0 3 * * *", "duration_minutes": 0}, "duration_minutes"),
        ({"kind": "cron", "cron": "0 3 * * *", "duration_minutes": 7 * 24 * 60 + 1}, "duration_minutes"),
        ({"kind": "hourly"}, "kind"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"starts_at": "yesterday"}, "starts_at"),
        ({"starts_at": "0001-01-01T00:00:00+05:00"}, "starts_at"),
        ({"monitors": []}, "monitors"),
        ({"monitors": [HUGE]}, "monitors"),
        ({"monitors": ["abc"]}, "monitors"),
        ({"name": ""}, "name"),
    ],
    ids=repr,
)
def test_a_bad_window_is_a_400_naming_the_field(api, user, payload, field):
    monitor = MonitorFactory(owner=user)
    before = iso(timezone.now() - timedelta(hours=1))
    payload = {k: (before if v == "{before}" else v) for k, v in payload.items()}
    response = api.post(WINDOWS, one_off([monitor], **payload), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not MaintenanceWindow.objects.exists()


def test_a_window_ending_before_it_starts_is_a_400_on_ends_at(api, user):
    now = timezone.now()
    response = api.post(WINDOWS, one_off([MonitorFactory(owner=user)], starts_at=iso(now),
                                         ends_at=iso(now - timedelta(minutes=1))), format="json")
    assert response.status_code == 400 and list(response.json()) == ["ends_at"]


def test_another_users_monitor_cannot_be_put_in_a_window(api, user, other_user):
    mine, theirs = MonitorFactory(owner=user), MonitorFactory(owner=other_user)
    response = api.post(WINDOWS, one_off([mine, theirs]), format="json")
    assert response.status_code == 400 and str(theirs.pk) in response.json()["monitors"][0]
    window = MaintenanceWindowFactory(owner=user, monitors=[mine])
    response = api.patch(f"{WINDOWS}{window.pk}/", {"monitors": [theirs.pk]}, format="json")
    assert response.status_code == 400 and "monitors" in response.json()
    assert list(window.monitors.all()) == [mine]


def test_another_users_windows_are_neither_listed_nor_touchable(api, other_user):
    theirs = MaintenanceWindowFactory(owner=other_user, name="theirs", monitors=[MonitorFactory(owner=other_user)])
    assert api.get(WINDOWS).json()["results"] == []
    url = f"{WINDOWS}{theirs.pk}/"
    assert api.get(url).status_code == 404
    assert api.patch(url, {"name": "hijacked"}, format="json").status_code == 404
    assert api.delete(url).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "theirs"


def test_windows_filter_by_monitor(api, user):
    a, b = MonitorFactory(owner=user), MonitorFactory(owner=user)
    for_a = MaintenanceWindowFactory(owner=user, monitors=[a])
    MaintenanceWindowFactory(owner=user, monitors=[b])
    assert [w["id"] for w in api.get(f"{WINDOWS}?monitor={a.pk}").json()["results"]] == [for_a.pk]


# --- never a 500 ---------------------------------------------------------------------

WEIRD_VALUES = [None, "", "abc", "\x00", "x" * 5000, ["a"], [None], {"a": "b"}, True, -1, 1.5, -HUGE, HUGE,
                "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "25:61", [0, 99]]
WINDOW_FIELDS_WRITTEN = ["name", "kind", "starts_at", "ends_at", "weekdays", "start_time", "cron",
                         "duration_minutes", "timezone", "monitors", "active"]


def test_no_value_of_any_window_field_makes_the_api_fail_with_a_500(api, user):
    monitor = MonitorFactory(owner=user)
    window = MaintenanceWindowFactory(owner=user, monitors=[monitor])
    failures = []
    for kind in ("once", "weekly", "cron"):
        valid = {**one_off([monitor]), "kind": kind, "weekdays": [1], "start_time": "02:00", "cron": "0 3 * * *",
                 "duration_minutes": 60}
        for field in WINDOW_FIELDS_WRITTEN:
            for value in WEIRD_VALUES:
                for method, url in [("post", WINDOWS), ("patch", f"{WINDOWS}{window.pk}/")]:
                    response = getattr(api, method)(url, {**valid, field: value}, format="json")
                    if response.status_code >= 500:
                        failures.append((kind, method, field, value, response.status_code))
    assert failures == []
    # Whatever was stored on the way still reads back.
    assert api.get(WINDOWS + "?page_size=1000").status_code == 200


def test_no_value_of_an_alert_field_makes_the_monitor_api_fail_with_a_500(api, user):
    monitor = MonitorFactory(owner=user)
    failures = []
    for field in ["channels", "recovery_checks", "latency_threshold_ms", "flap_threshold", "flap_window"]:
        for value in WEIRD_VALUES:
            for method, url in [("post", MONITORS), ("patch", f"{MONITORS}{monitor.pk}/")]:
                response = getattr(api, method)(url, {**NEW_MONITOR, field: value}, format="json")
                if response.status_code >= 500:
                    failures.append((method, field, value, response.status_code))
    assert failures == []


@pytest.mark.parametrize(
    "path",
    [
        "incidents/abc/", "incidents/-1/", f"incidents/{HUGE}/",
        "incidents/?monitor=abc", "incidents/?monitor=1.5", f"incidents/?monitor={HUGE}", "incidents/?monitor=%00",
        "incidents/?open=maybe", "incidents/?since=notadate", "incidents/?until=2024-13-45T99:00:00Z",
        "incidents/?since=0001-01-01T00:00:00%2B05:00", "incidents/?until=9999-12-31T23:59:59-05:00",
        "maintenance-windows/abc/", f"maintenance-windows/{HUGE}/", "maintenance-windows/?monitor=abc",
        f"maintenance-windows/?monitor={HUGE}", "maintenance-windows/?kind=bogus",
    ],
)
def test_no_url_makes_the_incident_or_window_api_fail_with_a_500(api, user, path):
    monitor = MonitorFactory(owner=user)
    IncidentFactory(monitor=monitor)
    MaintenanceWindowFactory(owner=user, monitors=[monitor])
    response = api.get("/api/v1/" + path)
    assert response.status_code in (200, 400, 404)


@pytest.mark.parametrize("query, field", [("monitor=abc", "monitor"), ("since=notadate", "since"),
                                          ("until=0001-01-01T00:00:00%2B05:00", "until")])
def test_a_bad_incident_filter_is_a_400_naming_it(api, query, field):
    response = api.get(f"{INCIDENTS}?{query}")
    assert response.status_code == 400 and field in response.json()


@pytest.mark.parametrize("path", ["incidents/", "incidents/{incident}/", "maintenance-windows/",
                                  "maintenance-windows/{window}/", "monitors/{monitor}/"])
def test_the_browsable_api_renders_the_incident_and_window_pages(user, path):
    monitor = MonitorFactory(owner=user)
    monitor.channels.add(ChannelFactory(owner=user))
    incident = IncidentFactory(monitor=monitor)
    window = MaintenanceWindowFactory(owner=user, monitors=[monitor])
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/v1/" + path.format(incident=incident.pk, window=window.pk, monitor=monitor.pk),
                          HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")


# --- alerting: does anyone hear about this monitor? ----------------------------------


def test_a_monitor_is_alerting_only_while_it_has_an_enabled_channel(api, user):
    channel = ChannelFactory(owner=user)
    created = api.post(MONITORS, {"name": "site", "url": "https://example.com/", "channels": []}, format="json")
    assert created.status_code == 201 and created.json()["alerting"] is False
    url = f"{MONITORS}{created.json()['id']}/"
    assert api.patch(url, {"channels": [channel.pk]}, format="json").json()["alerting"] is True
    # A channel switched off (by hand, or after an HTTP 410) tells no one.
    channel.disable("HTTP 410 Gone")
    assert api.get(url).json()["alerting"] is False


def test_a_new_monitor_subscribed_to_a_default_channel_is_alerting(api, user):
    ChannelFactory(owner=user, is_default=True)
    created = api.post(MONITORS, {"name": "site", "url": "https://example.com/"}, format="json")
    assert created.json()["alerting"] is True


def test_alerting_is_read_only(api, user):
    monitor = MonitorFactory(owner=user)
    response = api.patch(f"{MONITORS}{monitor.pk}/", {"alerting": True}, format="json")
    assert response.status_code == 200 and response.json()["alerting"] is False


def test_listing_monitors_costs_no_query_per_monitor_for_alerting(api, user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def list_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = api.get(MONITORS)
        assert response.status_code == 200
        return len(queries)

    MonitorFactory(owner=user).channels.add(ChannelFactory(owner=user))
    one = list_queries()
    for enabled in (True, False, True):
        MonitorFactory(owner=user).channels.add(ChannelFactory(owner=user, enabled=enabled))
    MonitorFactory(owner=user)
    assert list_queries() == one
    assert [m["alerting"] for m in api.get(MONITORS).json()["results"]].count(True) == 3
