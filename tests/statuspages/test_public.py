"""/status/<slug>/, its status.json and feed.atom: what a visitor reads,
what they never read, who may see an unpublished page, and the snapshot's
caching (validators, 304, rebuilt when a component's status changes)."""

from __future__ import annotations

import base64
import gzip
import json
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.http import http_date

from monitors import ingest, rollups
from monitors.models import Monitor
from statuspages import snapshot, tasks
from statuspages.models import StatusPage
from tests.factories import IncidentFactory, MonitorFactory
from tests.monitors.test_ingest import result

pytestmark = pytest.mark.django_db

SECRET_HOST = "db-primary.internal.example"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


@pytest.fixture
def page(user):
    api = MonitorFactory(owner=user, name="api-prod-7", url=f"https://{SECRET_HOST}:8443/health", retries=0)
    web = MonitorFactory(owner=user, name="web", url="https://www.example.com/")
    db = MonitorFactory(owner=user, name="db", url=f"tcp://{SECRET_HOST}:5432", kind="tcp")
    Monitor.objects.filter(owner=user).update(status="up", health="up")
    page = StatusPage.objects.create(owner=user, name="Acme", slug="acme", public=True, description="Our services.")
    page.set_components([{"monitor": api, "name": "Public API", "group": "Core"},
                         {"monitor": db, "name": "Database", "group": "Core"},
                         {"monitor": web, "name": "Website"}])
    return page


def checks(monitor, start, minutes, failing=()):
    ingest.ingest_results("local", "p@h", [result(monitor, start + timedelta(minutes=i), ok=i not in failing)
                                           for i in range(minutes)])


def down(monitor: Monitor, message: str = f"connect to {SECRET_HOST}:8443 refused") -> None:
    Monitor.objects.filter(pk=monitor.pk).update(status="down", health="down", failure_kind="refused",
                                                 failure_message=message, status_changed_at=timezone.now())


def test_the_json_has_every_component_with_90_days_oldest_first(page, user):
    api = page.components.get(name="Public API").monitor
    yesterday = rollups.floor_to(timezone.now(), rollups.DAY) - rollups.DAY
    checks(api, yesterday + timedelta(hours=2), 100, failing=range(10, 20))
    rollups.roll_up()
    response = Client().get("/status/acme/status.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"name", "status", "components", "incidents", "generated_at"}
    assert [c["name"] for c in body["components"]] == ["Public API", "Database", "Website"]
    assert [c["group"] for c in body["components"]] == ["Core", "Core", None]
    for component in body["components"]:
        assert set(component) == {"name", "group", "status", "uptime_percent_90d", "days"}
        days = component["days"]
        assert len(days) == 90
        # Consecutive dates ending today (UTC), oldest first.
        assert [date.fromisoformat(d["date"]) for d in days] == [
            timezone.now().date() - timedelta(days=89 - i) for i in range(90)]
    figures = body["components"][0]
    # Ten failed minutes of a hundred, an outage of its own (retries=0).
    assert figures["days"][-2]["uptime_percent"] == 90.0
    assert figures["uptime_percent_90d"] == 90.0
    assert figures["days"][-3]["uptime_percent"] is None  # no data is not downtime
    assert body["components"][1]["uptime_percent_90d"] is None
    assert body["status"] == "operational"


def test_an_outage_shows_in_the_day_bar_the_overall_status_and_the_incidents(page):
    api = page.components.get(name="Public API").monitor
    yesterday = rollups.floor_to(timezone.now(), rollups.DAY) - rollups.DAY
    start = yesterday + timedelta(hours=2)
    checks(api, start, 100, failing=range(10, 20))  # an outage, ended
    rollups.roll_up()
    down(api)
    IncidentFactory(monitor=api, cause_kind="refused", cause=f"connect to {SECRET_HOST} refused")
    body = Client().get("/status/acme/status.json").json()
    assert body["status"] == "partial_outage"
    assert body["components"][0]["status"] == "down"
    assert body["components"][0]["days"][-2]["uptime_percent"] == 90.0
    assert [(i["type"], i["status"], i["components"]) for i in body["incidents"]] == [
        ("outage", "open", ["Public API"]), ("outage", "resolved", ["Public API"])]
    # The cause by kind only: the message names an internal host.
    assert [i["cause"] for i in body["incidents"]] == ["Connection refused", "Unexpected status code"]
    assert SECRET_HOST not in json.dumps(body)


def test_the_page_reads_as_a_visitor_needs_and_leaks_nothing(page):
    api = page.components.get(name="Public API").monitor
    down(api)
    response = Client().get("/status/acme/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Acme", "Our services.", "Partial outage", "Public API", "Database", "Website", "Core",
                 "Connection refused", "Generated"):
        assert text in html, text
    assert html.count('class="bar ') == 3 * 90
    # Never the monitors' own names, targets, ids or error messages.
    for secret in (SECRET_HOST, "api-prod-7", "8443", "https://www.example.com", f"/{api.pk}/", api.badge_token):
        assert secret not in html, secret
    # No script at all: it reads fully without JavaScript; the stylesheet is a static file.
    assert "<script" not in html and "style=" not in html
    assert "/static/statuspages/status.css" in html


def test_an_owner_may_show_a_components_error_message(page):
    api = page.components.get(name="Public API").monitor
    page.components.filter(monitor=api).update(show_error_message=True)
    page.touch()
    down(api, "HTTP 503 from the load balancer")
    assert "HTTP 503 from the load balancer" in Client().get("/status/acme/").content.decode()


def test_a_page_not_public_is_a_404_like_an_unknown_slug_but_its_owner_previews_it(page, user, other_user):
    StatusPage.objects.filter(pk=page.pk).update(public=False)
    anonymous, stranger, owner = Client(), Client(), Client()
    stranger.force_login(other_user)
    owner.force_login(user)
    for suffix in ("", "status.json", "feed.atom"):
        assert anonymous.get(f"/status/acme/{suffix}").status_code == 404
        assert stranger.get(f"/status/acme/{suffix}").status_code == 404
        assert anonymous.get(f"/status/nope/{suffix}").status_code == 404
        preview = owner.get(f"/status/acme/{suffix}")
        assert preview.status_code == 200
    assert preview["Cache-Control"] == "private, no-store"


def test_validators_and_cache_headers_give_a_304(page):
    client = Client()
    first = client.get("/status/acme/")
    assert first["Cache-Control"] == f"public, max-age={snapshot.MAX_AGE}"
    assert first["ETag"] and first["Last-Modified"]
    again = client.get("/status/acme/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    since = client.get("/status/acme/", HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert since.status_code == 304
    # The JSON is another representation: its own validator.
    assert client.get("/status/acme/status.json", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


def test_a_client_that_takes_gzip_gets_the_snapshot_compressed_as_it_is_kept(page):
    client = Client()
    plain = client.get("/status/acme/")
    packed = client.get("/status/acme/", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert packed["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain
    assert gzip.decompress(packed.content) == plain.content
    assert plain["Vary"] == packed["Vary"] == "Accept-Encoding"
    # Each encoding is a representation of its own, with its own validator.
    assert packed["ETag"] != plain["ETag"]
    again = client.get("/status/acme/", HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=packed["ETag"])
    assert again.status_code == 304


def test_it_is_served_from_the_snapshot_the_worker_built_until_the_worker_sees_a_change(page):
    # The central worker's run (statuspages.build_snapshots) builds it before anyone asks.
    assert tasks.build_snapshots([page.pk]) == [page.pk]
    client = Client()
    with CaptureQueriesContext(connection) as queries:
        first = client.get("/status/acme/status.json")
    # The page by slug: nothing else is read, nothing is built.
    assert [q["sql"] for q in queries] == [q["sql"] for q in queries if "statuspages_statuspage" in q["sql"]]
    assert len(queries) == 1
    # Nothing changed: a second run builds nothing.
    assert tasks.build_snapshots([page.pk]) == []
    down(page.components.get(name="Database").monitor)
    # Visitors are served the snapshot as it was until the worker's next run.
    assert client.get("/status/acme/status.json")["ETag"] == first["ETag"]
    assert snapshot.stale() == {page.pk: snapshot.fingerprint(page)}
    assert tasks.build_snapshots([page.pk]) == [page.pk]
    again = client.get("/status/acme/status.json")
    assert again["ETag"] != first["ETag"]
    assert again.json()["components"][1]["status"] == "down"


def test_a_page_never_built_is_built_by_its_first_visitor_and_kept(page):
    with CaptureQueriesContext(connection) as queries:
        first = Client().get("/status/acme/")
    assert first.status_code == 200 and len(queries) > 1
    with CaptureQueriesContext(connection) as queries:
        again = Client().get("/status/acme/")
    assert again["ETag"] == first["ETag"] and len(queries) == 1


def test_the_worker_rebuilds_a_snapshot_a_minute_old(page):
    first = snapshot.current(page, "html")
    assert snapshot.stale(now=first.generated_at + timedelta(seconds=30)) == {}
    later = first.generated_at + timedelta(seconds=snapshot.MAX_AGE)
    assert list(snapshot.stale(now=later)) == [page.pk]
    assert snapshot.refresh_stale(now=later) == [page.pk]
    assert snapshot.current(page, "html").generated_at == later


def queued_builds() -> list[list[int]]:
    """The page ids of the build messages waiting on the central queue (Celery's protocol 2)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    # kombu pushes on the left: the oldest message is the last.
    messages = [json.loads(raw) for raw in reversed(client.lrange("central", 0, -1))]
    return [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages
            if m["headers"]["task"] == "statuspages.build_snapshots"]


def test_a_snapshot_the_worker_stopped_keeping_is_rebuilt_by_one_visitor(page):
    old = snapshot.rebuild(page, now=timezone.now() - snapshot.ABANDONED)
    first = Client().get("/status/acme/")
    assert first["Last-Modified"] != http_date(int(old.generated_at.timestamp()))
    # Once a minute at most: the next visitors are served what they find.
    again = snapshot.rebuild(page, now=timezone.now() - snapshot.ABANDONED)
    assert Client().get("/status/acme/")["Last-Modified"] == http_date(int(again.generated_at.timestamp()))


def test_the_beat_task_queues_the_stale_pages_a_few_at_a_time(page, user):
    redis.Redis.from_url(settings.REDIS_URL).delete("central")
    others = [StatusPage.objects.create(owner=user, name=f"P{n}", slug=f"p{n}")
              for n in range(tasks.PAGES_PER_TASK + 1)]
    snapshot.rebuild(others[0])
    # Fresh pages are left alone; the others go out in messages of PAGES_PER_TASK ids.
    stale = sorted([page.pk, *[o.pk for o in others[1:]]])
    assert tasks.refresh_snapshots() == len(stale)
    assert queued_builds() == [stale[: tasks.PAGES_PER_TASK], stale[tasks.PAGES_PER_TASK :]]
    redis.Redis.from_url(settings.REDIS_URL).delete("central")
    snapshot.refresh_stale()
    assert tasks.refresh_snapshots() == 0 and queued_builds() == []


def test_building_costs_the_same_queries_however_many_results_exist(page):
    api = page.components.get(name="Public API").monitor
    start = rollups.floor_to(timezone.now(), rollups.DAY) - 3 * rollups.DAY

    def build_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            snapshot.build(page, "x", timezone.now())
        return len(queries)

    checks(api, start, 60)
    rollups.roll_up()
    few = build_queries()
    checks(api, start + timedelta(hours=2), 600)
    rollups.roll_up()
    assert build_queries() == few


def test_a_deleted_monitor_leaves_the_rest_of_the_page(page):
    page.components.get(name="Database").monitor.delete()
    body = Client().get("/status/acme/status.json").json()
    assert [c["name"] for c in body["components"]] == ["Public API", "Website"]


def test_the_feed_lists_outages_and_notices_as_atom(page):
    api = page.components.get(name="Public API").monitor
    IncidentFactory(monitor=api, cause_kind="timeout", cause=f"{SECRET_HOST} timed out")
    report = page.reports.create(title="Planned database upgrade")
    report.monitors.set([page.components.get(name="Database").monitor])
    report.post("identified", "Upgrading to 17.")
    response = Client().get("/status/acme/feed.atom")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    ns = {"a": "http://www.w3.org/2005/Atom"}
    feed = ET.fromstring(response.content)
    titles = [e.findtext("a:title", namespaces=ns) for e in feed.findall("a:entry", ns)]
    assert sorted(titles) == ["Planned database upgrade (identified)", "Public API down (open)"]
    assert SECRET_HOST not in response.content.decode()
    assert "Upgrading to 17." in response.content.decode()
    # And on the page.
    assert "Planned database upgrade" in Client().get("/status/acme/").content.decode()
