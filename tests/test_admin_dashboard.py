"""The admin index as the operators' dashboard (loopr.admin.dashboard)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitors.choices import MonitorStatus
from tests.factories import (
    ChannelFactory,
    IncidentFactory,
    MonitorFactory,
    NotificationFactory,
    RegionFactory,
    WorkerNodeFactory,
)

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root():
    return get_user_model().objects.create_superuser("root", "", "pw")


@pytest.fixture
def staff(user):
    user.is_staff = True
    user.save()
    user.user_permissions.set(Permission.objects.filter(codename__in=[
        "view_monitor", "change_monitor", "view_incident", "view_notification"]))
    return user


def status_counts(html: str) -> dict[str, int]:
    """{label: count} as the dashboard's coloured status tiles show them."""
    found = re.findall(r'<a href="[^"]*\?status__exact=(\w+)"[^>]*>\s*<span class="count">(\d+)</span>', html)
    return {status: int(count) for status, count in found}


def make_monitors(owner, statuses: dict[str, int]) -> None:
    for status, count in statuses.items():
        for _ in range(count):
            MonitorFactory(owner=owner, status=status, paused=status == MonitorStatus.PAUSED)


def test_it_counts_monitors_by_status_in_colour_for_a_staff_user(root, user):
    make_monitors(user, {"down": 2, "degraded": 1, "up": 3, "paused": 1, "maintenance": 1})
    response = login(root).get("/admin/")
    html = response.content.decode()
    assert response.status_code == 200
    assert status_counts(html) == {"down": 2, "degraded": 1, "maintenance": 1, "up": 3, "paused": 1, "pending": 0}
    assert f"background: {MonitorStatus.DOWN.color}" in html
    assert f"background: {MonitorStatus.UP.color}" in html
    assert "Monitors (8)" in html


def test_each_status_links_to_the_monitor_list_filtered_by_it(root, user):
    make_monitors(user, {"down": 2, "up": 1})
    client = login(root)
    html = client.get("/admin/").content.decode()
    link = re.search(r'href="(/admin/monitors/monitor/\?status__exact=down)"', html).group(1)
    listed = client.get(link)
    assert listed.status_code == 200
    assert "2 monitors" in listed.content.decode() or "2 results" in listed.content.decode()


def test_it_lists_open_incidents_with_their_age_and_cause_linking_to_them(root, user):
    monitor = MonitorFactory(owner=user, name="payments api", status="down")
    incident = IncidentFactory(monitor=monitor, started_at=timezone.now() - timedelta(hours=3), cause="HTTP 503")
    IncidentFactory(monitor=monitor, resolved_at=timezone.now(), cause="an old one")
    html = login(root).get("/admin/").content.decode()
    assert f'href="/admin/monitors/incident/{incident.pk}/change/"' in html
    assert "payments api" in html and "HTTP 503" in html
    assert "3\xa0hours" in html
    assert "an old one" not in html
    assert "Open incidents (1)" in html
    assert 'href="/admin/monitors/incident/?state=open"' in html


def test_it_shows_regions_with_their_nodes_online(root):
    live, quiet = RegionFactory(name="eu-west"), RegionFactory(name="us-east")
    WorkerNodeFactory(region=live)
    WorkerNodeFactory(region=live, last_heartbeat_at=timezone.now() - timedelta(hours=1))
    WorkerNodeFactory(region=quiet, last_heartbeat_at=timezone.now() - timedelta(hours=1))
    html = login(root).get("/admin/").content.decode()
    assert "Regions online (1 of 2)" in html
    assert re.search(rf'href="/admin/workers/workernode/\?region__id__exact={live.pk}"[^>]*>1 of 2<', html)
    assert re.search(rf'href="/admin/workers/workernode/\?region__id__exact={quiet.pk}"[^>]*>0 of 1<', html)


def test_it_counts_failed_notifications_and_links_to_them(root, user):
    channel = ChannelFactory(owner=user)
    NotificationFactory.create_batch(2, channel=channel, status="failed")
    NotificationFactory(channel=channel, status="sent")
    client = login(root)
    html = client.get("/admin/").content.decode()
    assert re.search(r'href="/admin/notifications/notification/\?status__exact=failed"[^>]*>2 failed<', html)
    assert client.get("/admin/notifications/notification/?status__exact=failed").status_code == 200


def test_a_staff_user_sees_only_their_own_monitors_incidents_and_notifications(staff, other_user):
    make_monitors(staff, {"down": 1, "up": 2})
    make_monitors(other_user, {"down": 5, "degraded": 4})
    IncidentFactory(monitor=MonitorFactory(owner=other_user, name="someone else's"), cause="their outage")
    NotificationFactory(channel=ChannelFactory(owner=other_user), status="failed")
    RegionFactory(name="eu-west")
    response = login(staff).get("/admin/")
    html = response.content.decode()
    assert response.status_code == 200
    assert status_counts(html) == {"down": 1, "degraded": 0, "maintenance": 0, "up": 2, "paused": 0, "pending": 0}
    assert "their outage" not in html and "someone else" not in html
    assert ">0 failed<" in html
    # The fleet is the operators' (a region's page is not theirs to open).
    assert "Regions online" not in html


def dashboard_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/admin/").status_code == 200
    return len(queries)


def test_the_dashboard_takes_the_same_number_of_queries_however_many_monitors(root, user):
    client = login(root)
    region = RegionFactory(name="eu-west")
    WorkerNodeFactory(region=region)
    make_monitors(user, {"down": 1, "up": 1})
    IncidentFactory(monitor=MonitorFactory(owner=user))
    few = dashboard_queries(client)
    make_monitors(user, {"down": 20, "degraded": 10, "up": 40, "paused": 5})
    for _ in range(30):
        IncidentFactory(monitor=MonitorFactory(owner=user, status="down"))
    for name in ("us-east", "ap-south"):
        WorkerNodeFactory(region=RegionFactory(name=name))
    NotificationFactory.create_batch(10, channel=ChannelFactory(owner=user), status="failed")
    assert dashboard_queries(client) == few
    assert few <= 12


def test_the_staff_dashboard_takes_a_fixed_number_of_queries_too(staff, django_assert_max_num_queries):
    client = login(staff)
    make_monitors(staff, {"down": 30, "up": 30})
    for _ in range(25):
        IncidentFactory(monitor=MonitorFactory(owner=staff, status="down"))
    with django_assert_max_num_queries(14):
        assert client.get("/admin/").status_code == 200


# The monitor list (monitors/admin.py MonitorAdmin).

def listed_names(html: str) -> list[str]:
    return re.findall(r'<th class="field-name"><a href="[^"]+">([^<]+)</a>', html)


def test_the_monitor_list_shows_each_status_in_its_colour(root, user):
    make_monitors(user, {"down": 1, "up": 1})
    html = login(root).get("/admin/monitors/monitor/").content.decode()
    assert re.search(rf'<span class="loopr-status" style="background: {MonitorStatus.DOWN.color};[^>]*>Down</span>', html)
    assert re.search(rf'<span class="loopr-status" style="background: {MonitorStatus.UP.color};[^>]*>Up</span>', html)


def test_the_monitor_list_puts_down_then_degraded_first_then_the_rest_by_name(root, user):
    for name, status in [("alpha", "up"), ("bravo", "degraded"), ("charlie", "down"), ("delta", "paused"),
                         ("echo", "down"), ("foxtrot", "maintenance")]:
        MonitorFactory(owner=user, name=name, status=status)
    client = login(root)
    html = client.get("/admin/monitors/monitor/").content.decode()
    assert listed_names(html) == ["charlie", "echo", "bravo", "alpha", "delta", "foxtrot"]
    # By name when asked (the one other order offered).
    by_name = client.get("/admin/monitors/monitor/?o=1").content.decode()
    assert listed_names(by_name) == ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]


def test_the_down_first_order_is_read_from_its_index(root, user):
    from monitors.models import ATTENTION, Monitor

    make_monitors(user, {"down": 3, "up": 3})
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        plan = Monitor.objects.order_by(ATTENTION.asc(), "name", "id")[:100].explain()
    assert "monitor_attention_idx" in plan


def test_the_dashboards_open_incidents_are_read_from_their_index(user):
    from monitors.models import Incident

    IncidentFactory.create_batch(3, monitor=MonitorFactory(owner=user), resolved_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = Incident.objects.open().order_by("started_at")[:20].explain()
    assert "incident_open_idx" in plan


def test_the_monitor_list_shows_uptime_and_p95_from_the_rollups(root, user):
    from monitors.models import CheckResult

    region = RegionFactory(name="eu-west")
    node = WorkerNodeFactory(region=region)
    checked = MonitorFactory(owner=user, name="checked", status="up")
    checked.regions.add(region)
    MonitorFactory(owner=user, name="never checked")
    now = timezone.now().replace(second=0, microsecond=0)
    for minutes in range(1, 11):
        slot = now - timedelta(minutes=minutes)
        CheckResult.objects.create(monitor=checked, region=region, node=node, scheduled_at=slot, checked_at=slot,
                                   ok=True, latency_ms=100.0)
    html = login(root).get("/admin/monitors/monitor/").content.decode()
    row = re.search(r'<tr>.*?>checked</a>.*?</tr>', html, re.S).group(0)
    assert '<td class="field-uptime_24h">100.000 %</td>' in row
    assert '<td class="field-uptime_30d">100.000 %</td>' in row
    p95 = float(re.search(r'<td class="field-p95_24h">([\d.]+) ms</td>', row).group(1))
    assert 90 <= p95 <= 110  # the histogram's bucket around 100 ms
    empty = re.search(r'<tr>.*?>never checked</a>.*?</tr>', html, re.S).group(0)
    assert '<td class="field-uptime_24h">—</td>' in empty and '<td class="field-p95_24h">—</td>' in empty
    # The 24 h sparkline: a bar an hour, this hour's (its results not yet rolled up) up and 100 ms.
    bars = re.findall(r'<rect x="\d+" y="\d+" width="\d+" height="(\d+)" fill="([^"]+)"><title>([^<]+)</title>', row)
    assert len(bars) == 24
    assert bars[-1][1:] == (MonitorStatus.UP.color, f"{timezone.localtime(now):%H}:00: 100.000 %, 100 ms")
    assert bars[0][1:] == ("#d0d0d0", f"{timezone.localtime(now - timedelta(hours=23)):%H}:00: no data")
    quiet = html[html.rindex("<tr", 0, html.index(">never checked</a>")):]
    quiet = quiet[:quiet.index("</tr>")]
    assert len(re.findall("<rect", quiet)) == 24 and "100 ms" not in quiet


def test_the_monitor_list_takes_the_same_number_of_queries_for_a_page_of_any_size(root, user):
    client = login(root)
    make_monitors(user, {"down": 2, "up": 2})
    with CaptureQueriesContext(connection) as few:
        assert client.get("/admin/monitors/monitor/").status_code == 200
    make_monitors(user, {"down": 20, "degraded": 20, "up": 40})
    with CaptureQueriesContext(connection) as many:
        assert client.get("/admin/monitors/monitor/").status_code == 200
    assert len(many) == len(few)


# A monitor's page (MonitorAdmin.change_view).

def test_a_monitors_page_shows_its_state_its_open_incident_and_90_daily_uptime_bars(root, user):
    from monitors import rollups
    from monitors.models import CheckResult

    region = RegionFactory(name="eu-west")
    node = WorkerNodeFactory(region=region)
    monitor = MonitorFactory(owner=user, name="payments api", status="down", status_changed_at=timezone.now())
    monitor.regions.add(region)
    now = timezone.now()
    checked_day = rollups.floor_to(now, rollups.DAY) - 3 * rollups.DAY
    for minutes in range(60):
        slot = checked_day + timedelta(hours=10, minutes=minutes)
        CheckResult.objects.create(monitor=monitor, region=region, node=node, scheduled_at=slot, checked_at=slot,
                                   ok=True, latency_ms=50.0)
    rollups.roll_up(now)
    assert rollups.rolled_up_to() is not None  # the day comes from its rollup, not the raw results
    incident = IncidentFactory(monitor=monitor, cause="HTTP 503, expected 200-399")
    monitor.current_incident = incident
    monitor.save()

    html = login(root).get(f"/admin/monitors/monitor/{monitor.pk}/change/").content.decode()
    state = html[html.index('id="loopr-monitor-state"'):html.index("<fieldset")]  # above the form's fields
    assert re.search(rf'style="background: {MonitorStatus.DOWN.color};[^>]*>Down</span>', state)
    assert f'href="/admin/monitors/incident/{incident.pk}/change/"' in state and "HTTP 503" in state
    bars = re.findall(r'<rect x="\d+" width="\d+" height="\d+" fill="([^"]+)"><title>([^<]+)</title></rect>', state)
    assert len(bars) == 90
    assert bars[-4] == (MonitorStatus.UP.color, f"{checked_day:%Y-%m-%d}: 100.000 %")
    assert bars[0] == ("#d0d0d0", f"{checked_day - 86 * rollups.DAY:%Y-%m-%d}: no data")
    latest = re.findall(r"<td>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)</td>", state)
    newest = checked_day + timedelta(hours=10, minutes=59)
    assert len(latest) == 10 and latest[0] == f"{timezone.localtime(newest):%Y-%m-%d %H:%M:%S}"
    assert f'href="/admin/monitors/checkresult/?monitor__id__exact={monitor.pk}"' in state


def test_a_monitor_never_checked_shows_only_grey_bars_and_no_incident(root, user):
    monitor = MonitorFactory(owner=user, name="new")
    html = login(root).get(f"/admin/monitors/monitor/{monitor.pk}/change/").content.decode()
    fills = re.findall(r'<rect [^>]*fill="([^"]+)"', html)
    assert fills == ["#d0d0d0"] * 90
    assert "Open incident:" in html and "none" in html
    assert "None yet." in html


def test_a_monitors_page_charts_24_hours_of_response_time_per_region(root, user):
    from monitors import rollups
    from monitors.models import CheckResult

    monitor = MonitorFactory(owner=user, name="payments api")
    now = timezone.now()
    hour = rollups.floor_to(now, rollups.HOUR) - 3 * rollups.HOUR
    for name, latency in (("eu-west", 50.0), ("us-east", 150.0)):
        region = RegionFactory(name=name)
        node = WorkerNodeFactory(region=region)
        for minutes in range(0, 180, 5):
            slot = hour + timedelta(minutes=minutes)
            CheckResult.objects.create(monitor=monitor, region=region, node=node, scheduled_at=slot,
                                       checked_at=slot, ok=True, latency_ms=latency)
    rollups.roll_up(now)

    html = login(root).get(f"/admin/monitors/monitor/{monitor.pk}/change/").content.decode()
    chart = html[html.index('class="loopr-latency-chart"'):html.index("Uptime per day")]
    # A line per region; a point per hour with results (three), each titled with its average.
    assert chart.count("<polyline") == 2
    points = re.findall(r"<title>([\w-]+) (\d\d:\d\d): (\d+) ms</title>", chart)
    assert sorted({(name, ms) for name, _, ms in points}) == [("eu-west", "50"), ("us-east", "150")]
    assert len(points) == 6 and "<script" not in chart
