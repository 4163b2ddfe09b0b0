from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from monitors.models import CheckResult, Monitor
from tests.factories import MonitorFactory, RegionFactory, WorkerNodeFactory

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"

# Field names scripts rely on: renaming one breaks them.
MONITOR_FIELDS = {
    "id", "name", "url", "interval", "timeout", "method", "headers", "body", "expected_status",
    "keyword", "follow_redirects", "regions", "retries", "paused", "status", "last_checked_at",
}
RESULT_FIELDS = {
    "id", "region", "node", "scheduled_at", "checked_at", "ok", "latency_ms", "status_code",
    "error_kind", "error",
}


def add_results(monitor: Monitor, count: int, region: str = "local", **fields) -> list[CheckResult]:
    """`count` results one minute apart, the newest a minute ago."""
    region_row = RegionFactory(name=region)
    now = timezone.now().replace(microsecond=0)
    return CheckResult.objects.bulk_create(
        CheckResult(
            monitor=monitor, region=region_row, node=WorkerNodeFactory(name="probe@host"), ok=True, latency_ms=3.0,
            status_code=200, scheduled_at=now - timedelta(minutes=i + 1),
            checked_at=now - timedelta(minutes=i + 1) + timedelta(seconds=1), **fields,
        )
        for i in range(count)
    )


def results_url(monitor: Monitor, query: str = "") -> str:
    return f"{MONITORS}{monitor.pk}/results/{query}"


# --- CRUD --------------------------------------------------------------------


def test_a_user_creates_a_monitor_and_reads_it_back_with_the_documented_fields(api, user):
    RegionFactory(name="eu-west")
    response = api.post(MONITORS, {
        "name": "shop", "url": "https://shop.example/health", "interval": 60, "timeout": 5,
        "method": "HEAD", "headers": {"X-Check": "loopr"}, "expected_status": "200-299,301",
        "keyword": "ok", "follow_redirects": False, "regions": ["eu-west"], "retries": 2,
    }, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert MONITOR_FIELDS <= created.keys()
    # What was sent is what is stored, owned by the caller, waiting for a first check.
    monitor = Monitor.objects.get(pk=created["id"])
    assert monitor.owner == user and monitor.status == "pending"
    assert (monitor.method, monitor.headers, monitor.regions.get().name) == ("HEAD", {"X-Check": "loopr"}, "eu-west")
    fetched = api.get(f"{MONITORS}{monitor.pk}/").json()
    assert fetched["regions"] == ["eu-west"] and fetched["retries"] == 2 and fetched["last_checked_at"] is None


def test_headers_http_can_carry_are_accepted(api):
    headers = {"X-Api-Key": "a1!~", "Accept-Language": "fr-CH, fr;q=0.9", "X-Name": "Zo\u00eb\tB", "X-Empty": ""}
    response = api.post(MONITORS, {"name": "h", "url": "http://example.com/", "headers": headers}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["headers"] == headers


def test_omitted_interval_and_timeout_get_defaults_that_pass_validation(api):
    response = api.post(MONITORS, {"name": "bare", "url": "tcp://db.example:5432"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["interval"] == 60 and 0 < body["timeout"] < body["interval"]


def test_a_user_lists_only_their_own_monitors(api, user, other_user):
    mine = MonitorFactory(owner=user, name="mine")
    MonitorFactory(owner=other_user, name="theirs")
    response = api.get(MONITORS)
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["results"]] == [mine.pk]


def test_a_user_updates_and_deletes_their_monitor(api, user):
    monitor = MonitorFactory(owner=user, interval=60, timeout=5)
    response = api.patch(f"{MONITORS}{monitor.pk}/", {"name": "renamed", "interval": 120}, format="json")
    assert response.status_code == 200, response.json()
    monitor.refresh_from_db()
    assert (monitor.name, monitor.interval) == ("renamed", 120)

    put = api.put(f"{MONITORS}{monitor.pk}/", {"name": "put", "url": "http://example.com/"}, format="json")
    assert put.status_code == 200, put.json()
    # A PUT keeps the monitor's interval and timeout when it does not send them.
    assert (put.json()["interval"], put.json()["timeout"]) == (120, 5.0)

    assert api.delete(f"{MONITORS}{monitor.pk}/").status_code == 204
    assert not Monitor.objects.filter(pk=monitor.pk).exists()


@pytest.mark.parametrize(
    "method, suffix, data",
    [
        ("get", "", None),
        ("patch", "", {"name": "hijacked"}),
        ("put", "", {"name": "hijacked", "url": "http://example.com/"}),
        ("delete", "", None),
        ("get", "results/", None),
    ],
)
def test_another_users_monitor_is_a_404(api, other_user, method, suffix, data):
    theirs = MonitorFactory(owner=other_user, name="theirs")
    add_results(theirs, 1)
    response = getattr(api, method)(f"{MONITORS}{theirs.pk}/{suffix}", data, format="json")
    assert response.status_code == 404
    # Nothing about it leaks, and nothing about it changes.
    assert "theirs" not in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.name == "theirs"


def test_without_credentials_the_api_answers_401():
    assert APIClient().get(MONITORS).status_code == 401


def test_a_logged_in_browser_session_can_use_the_api(user):
    MonitorFactory(owner=user)
    client = APIClient()
    client.force_login(user)
    assert client.get(MONITORS).json()["count"] == 1


def test_the_api_root_lists_monitors_and_regions(api):
    response = api.get("/api/v1/")
    assert response.status_code == 200
    assert {"monitors", "regions"} <= response.json().keys()


# --- pause and resume ----------------------------------------------------------


def test_pausing_through_the_api_sets_paused_and_resuming_sets_pending(api, user):
    monitor = MonitorFactory(owner=user, status="down", consecutive_failures=4)
    paused = api.patch(f"{MONITORS}{monitor.pk}/", {"paused": True}, format="json").json()
    assert (paused["paused"], paused["status"]) == (True, "paused")

    resumed = api.patch(f"{MONITORS}{monitor.pk}/", {"paused": False}, format="json").json()
    assert (resumed["paused"], resumed["status"]) == (False, "pending")
    # A resumed monitor starts afresh: due now, no failures carried over.
    monitor.refresh_from_db()
    assert monitor.consecutive_failures == 0 and monitor.next_check_at <= timezone.now()


def test_a_monitor_created_paused_is_paused(api):
    body = api.post(MONITORS, {"name": "later", "url": "http://example.com/", "paused": True}, format="json").json()
    assert (body["paused"], body["status"]) == (True, "paused")


def test_status_is_read_only(api, user):
    monitor = MonitorFactory(owner=user)
    api.patch(f"{MONITORS}{monitor.pk}/", {"status": "up", "last_checked_at": timezone.now().isoformat()},
              format="json")
    monitor.refresh_from_db()
    assert monitor.status == "pending" and monitor.last_checked_at is None


# --- results ------------------------------------------------------------------


def test_results_come_newest_first_with_the_documented_fields(api, user):
    monitor = MonitorFactory(owner=user)
    add_results(monitor, 3)
    body = api.get(results_url(monitor)).json()
    slots = [r["scheduled_at"] for r in body["results"]]
    assert len(slots) == 3 and slots == sorted(slots, reverse=True)
    assert RESULT_FIELDS <= body["results"][0].keys()
    assert body["results"][0]["region"] == "local"


def test_following_the_cursor_visits_every_result_once(api, user):
    monitor = MonitorFactory(owner=user)
    stored = add_results(monitor, 7)
    seen, url = [], results_url(monitor, "?page_size=3")
    while url:
        body = api.get(url).json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
    assert seen == [r.pk for r in stored]  # stored newest first


def test_results_of_the_same_slot_from_several_regions_are_paged_without_loss(api, user):
    monitor = MonitorFactory(owner=user)
    for region in ("a", "b", "c"):
        add_results(monitor, 3, region=region)
    seen, url = [], results_url(monitor, "?page_size=2")
    while url:
        body = api.get(url).json()
        seen += [(r["scheduled_at"], r["id"]) for r in body["results"]]
        url = body["next"]
    assert len(seen) == 9 and len(set(seen)) == 9
    assert [slot for slot, _ in seen] == sorted((slot for slot, _ in seen), reverse=True)


def test_page_size_above_1000_is_capped_not_refused(api, user):
    monitor = MonitorFactory(owner=user)
    add_results(monitor, 1003)
    response = api.get(results_url(monitor, "?page_size=5000"))
    assert response.status_code == 200
    first = response.json()
    assert len(first["results"]) == 1000 and first["next"]
    assert len(api.get(first["next"]).json()["results"]) == 3


@pytest.mark.parametrize(
    "query, expected",
    [
        ("?ok=false", {"fail-eu"}),
        ("?ok=true", {"ok-local", "ok-eu"}),
        ("?region=eu-west", {"fail-eu", "ok-eu"}),
        ("?error_kind=timeout", {"fail-eu"}),
        ("?since={t1}", {"fail-eu", "ok-eu"}),
        ("?until={t1}", {"ok-local"}),
        ("?since={t1}&until={t2}", {"ok-eu"}),
    ],
)
def test_results_filter_by_outcome_region_kind_and_time(api, user, query, expected):
    monitor = MonitorFactory(owner=user)
    t0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    t1, t2 = t0 + timedelta(minutes=1), t0 + timedelta(minutes=2)
    local, eu = RegionFactory(name="local"), RegionFactory(name="eu-west")
    for node, region, slot, ok, kind in [
        ("ok-local", local, t0, True, "ok"), ("ok-eu", eu, t1, True, "ok"), ("fail-eu", eu, t2, False, "timeout"),
    ]:
        CheckResult.objects.create(monitor=monitor, region=region, node=WorkerNodeFactory(name=node), scheduled_at=slot,
                                   checked_at=slot, ok=ok, error_kind=kind)
    query = query.format(t1=t1.isoformat().replace("+00:00", "Z"), t2=t2.isoformat().replace("+00:00", "Z"))
    response = api.get(results_url(monitor, query))
    assert response.status_code == 200, response.json()
    assert {r["node"] for r in response.json()["results"]} == expected


def test_results_of_one_monitor_never_include_another_monitors(api, user):
    mine, other = MonitorFactory(owner=user), MonitorFactory(owner=user)
    add_results(mine, 2)
    CheckResult.objects.create(monitor=other, region=RegionFactory(), node=WorkerNodeFactory(name="other"), ok=True,
                               scheduled_at=timezone.now(), checked_at=timezone.now())
    assert {r["node"] for r in api.get(results_url(mine)).json()["results"]} == {"probe@host"}


# --- regions -------------------------------------------------------------------


def test_regions_are_listed_with_whether_they_are_live(api):
    RegionFactory(name="eu-west", last_seen_at=timezone.now())
    RegionFactory(name="us-east", last_seen_at=timezone.now() - timedelta(hours=1))
    response = api.get("/api/v1/regions/")
    assert response.status_code == 200
    assert {r["name"]: r["live"] for r in response.json()} == {"eu-west": True, "us-east": False}


def test_regions_are_read_only(api):
    RegionFactory(name="eu-west")
    assert api.post("/api/v1/regions/", {"name": "mine"}, format="json").status_code == 405
    assert api.delete("/api/v1/regions/eu-west/").status_code == 405


# --- schema and docs ------------------------------------------------------------


def test_the_openapi_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/monitors/{id}/results/" in schema.content
    assert api.get("/api/docs/").status_code == 200


def test_the_openapi_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn: a warning means a field or parameter is typed wrong in the docs.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


@pytest.mark.parametrize("path", ["", "monitors/", "monitors/{id}/", "monitors/{id}/results/", "regions/",
                                  "regions/local/"])
def test_the_browsable_api_renders_every_page(user, path):
    monitor = MonitorFactory(owner=user)
    add_results(monitor, 2)
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/v1/" + path.format(id=monitor.pk), HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
