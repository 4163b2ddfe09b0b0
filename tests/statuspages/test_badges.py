"""/badge/<token>/…: a monitor's badges by its unguessable token (never its
id), text that fits its box, labels escaped, rotation ends the old token."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitors import figures, ingest, rollups
from monitors.models import Monitor
from statuspages import badges
from tests.factories import MonitorFactory
from tests.monitors.test_ingest import result

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def monitor(user):
    monitor = MonitorFactory(owner=user, retries=0, latency_threshold_ms=100)
    start = rollups.floor_to(timezone.now(), rollups.HOUR) - timedelta(hours=3)
    ingest.ingest_results("local", "p@h", [result(monitor, start + timedelta(minutes=i), latency_ms=40.0 + i % 5)
                                           for i in range(100)])
    monitor.refresh_from_db()
    return monitor


def texts(response) -> list[str]:
    root = ET.fromstring(response.content)
    return [t.text for t in root.iter(f"{SVG}text")][1::2]


def test_the_status_badge_says_the_monitors_status(monitor):
    response = Client().get(f"/badge/{monitor.badge_token}/status.svg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Cache-Control"].startswith("public, max-age=")
    assert texts(response) == ["status", "up"]
    Monitor.objects.filter(pk=monitor.pk).update(status="down")
    assert texts(Client().get(f"/badge/{monitor.badge_token}/status.svg")) == ["status", "down"]


def test_uptime_and_latency_badges_read_the_window(monitor):
    assert texts(Client().get(f"/badge/{monitor.badge_token}/uptime.svg?window=7d")) == ["uptime 7d", "100%"]
    label, message = texts(Client().get(f"/badge/{monitor.badge_token}/latency.svg"))
    assert label == "p95 24h" and message.endswith(" ms")
    assert 40 <= float(message.split()[0]) <= 46


def test_a_badge_reads_its_window_from_the_figures_the_worker_keeps(monitor):
    paths = [f"/badge/{monitor.badge_token}/uptime.svg?window=30d", f"/badge/{monitor.badge_token}/latency.svg"]
    # The first badge of a monitor computes its figures, and has them kept from then on.
    first = [texts(Client().get(path)) for path in paths]
    # The roll-up task: roll up, then recompute what is kept.
    rollups.roll_up()
    assert figures.refresh() > 0
    with CaptureQueriesContext(connection) as queries:
        again = [texts(Client().get(path)) for path in paths]
    assert again == first
    assert first[0] == ["uptime 30d", "100%"]
    # No rollup is read at request time: the token, then raw results since the roll-up.
    assert not [q["sql"] for q in queries if "monitors_rollup" in q["sql"]]


def test_a_bad_window_is_a_400_naming_it(monitor):
    response = Client().get(f"/badge/{monitor.badge_token}/uptime.svg?window=1y")
    assert response.status_code == 400 and response.content.startswith(b"window")


def test_the_shields_endpoint_format(monitor):
    body = Client().get(f"/badge/{monitor.badge_token}/shields.json?label=API").json()
    assert body == {"schemaVersion": 1, "label": "API", "message": "up", "color": "2e7d32"}


def test_a_label_is_escaped(monitor):
    response = Client().get(f"/badge/{monitor.badge_token}/status.svg", {"label": '<script>alert("x")</script>&'})
    assert b"<script" not in response.content
    assert texts(response)[0] == '<script>alert("x")</script>&'  # as text, parsed back


def test_widths_fit_their_text():
    narrow, wide = badges.svg("status", "up", "#000"), badges.svg("status", "WWWWWWWWWWWWWWWW", "#000")
    width = lambda svg: int(ET.fromstring(svg).get("width"))  # noqa: E731
    assert width(wide) - width(narrow) == pytest.approx(badges.text_width("WWWWWWWWWWWWWWWW") - badges.text_width("up"),
                                                        abs=1)
    assert badges.text_width("iiii") < badges.text_width("mmmm")


def test_unknown_and_rotated_tokens_are_404_and_ids_find_nothing(monitor, api):
    old = monitor.badge_token
    assert len(old) >= 40
    response = api.post(f"/api/v1/monitors/{monitor.pk}/rotate-badge-token/")
    assert response.status_code == 200
    new = response.json()["badge_token"]
    assert new != old and api.get(f"/api/v1/monitors/{monitor.pk}/").json()["badge_token"] == new
    client = Client()
    for path in (f"/badge/{old}/status.svg", f"/badge/{monitor.pk}/status.svg", "/badge/x/shields.json",
                 f"/badge/{old}/uptime.svg?window=bad"):
        assert client.get(path).status_code == 404, path
    assert client.get(f"/badge/{new}/status.svg").status_code == 200


def test_the_badge_token_cannot_be_written_and_another_users_monitor_cannot_be_rotated(monitor, api, other_user):
    token = monitor.badge_token
    api.patch(f"/api/v1/monitors/{monitor.pk}/", {"badge_token": "mine"}, format="json")
    monitor.refresh_from_db()
    assert monitor.badge_token == token
    theirs = MonitorFactory(owner=other_user)
    assert api.post(f"/api/v1/monitors/{theirs.pk}/rotate-badge-token/").status_code == 404
