"""The API with many monitors: pages of a chosen size, a page's cost that
does not grow with its rows, and monitors created by the list."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loopr.api import MAX_PAGE_SIZE
from monitors.api.serializers import MAX_BULK_CREATE
from monitors.models import Monitor
from tests.factories import ChannelFactory, IncidentFactory, MonitorFactory, RegionFactory

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"


def item(n: int, **fields) -> dict:
    return {"name": f"site {n}", "url": f"https://site{n}.example/", "interval": 60, "timeout": 5, **fields}


def queries_of(api, method: str, url: str, data=None) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as captured:
        response = getattr(api, method)(url, data, format="json") if data is not None else api.get(url)
    # Savepoints are the test's transaction, not work of the request.
    return len([q for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]), response


def busy_monitors(user, count: int) -> None:
    """Monitors with everything a list row shows: regions (one not live),
    channels, an open incident."""
    live = RegionFactory(name="eu-west", last_seen_at=timezone.now())
    dead = RegionFactory(name="us-east")
    channel = ChannelFactory(owner=user)
    for _ in range(count):
        monitor = MonitorFactory(owner=user)
        monitor.regions.set([live, dead])
        monitor.channels.set([channel])
        monitor.current_incident = IncidentFactory(monitor=monitor)
        monitor.save()


# --- page_size ---------------------------------------------------------------


def test_the_monitor_list_honours_page_size(api, user):
    MonitorFactory.create_batch(7, owner=user)
    first = api.get(f"{MONITORS}?page_size=3").json()
    # Three a page, the rest reachable through `next`, with the same size.
    assert first["count"] == 7 and len(first["results"]) == 3
    assert "page_size=3" in first["next"]
    second = api.get(first["next"]).json()
    assert len(second["results"]) == 3
    assert {m["id"] for m in first["results"]}.isdisjoint(m["id"] for m in second["results"])


def test_the_monitor_list_caps_page_size_instead_of_refusing(api, user, settings):
    Monitor.objects.bulk_create(
        Monitor(owner=user, name=f"m{i}", url="http://127.0.0.1:9/", interval=60, timeout=5)
        for i in range(MAX_PAGE_SIZE + 2)
    )
    response = api.get(f"{MONITORS}?page_size={MAX_PAGE_SIZE * 10}")
    assert response.status_code == 200
    assert len(response.json()["results"]) == MAX_PAGE_SIZE


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "", "1e3"])
def test_a_page_size_that_is_no_size_is_a_400_naming_it(api, user, value):
    # The schema says a whole number of at least 1; junk is not read as the default.
    MonitorFactory.create_batch(3, owner=user)
    response = api.get(f"{MONITORS}?page_size={value}")
    assert response.status_code == 400 and "page_size" in response.json()


@pytest.mark.parametrize("param", ["page", "page_size"])
@pytest.mark.parametrize("path", ["/api/v1/incidents/", "/api/v1/monitors/1/results/", "/api/v1/monitors/1/pings/"])
def test_every_kind_of_page_refuses_junk_numbers_naming_the_parameter(api, user, param, path):
    MonitorFactory(owner=user, pk=1)
    response = api.get(f"{path}?{param}=x")
    if param == "page" and path != "/api/v1/incidents/":
        assert response.status_code == 200  # cursor pages take no page number: ignored like any unknown parameter
    else:
        assert response.status_code == 400 and param in response.json()


def test_a_huge_page_size_gets_the_largest_page(api, user):
    MonitorFactory.create_batch(3, owner=user)
    response = api.get(f"{MONITORS}?page_size={10**30}")
    assert response.status_code == 200 and len(response.json()["results"]) == 3


@pytest.mark.parametrize("path", ["/api/v1/incidents/", "/api/v1/channels/", "/api/v1/notifications/",
                                  "/api/v1/maintenance-windows/"])
def test_the_other_lists_honour_page_size_too(api, user, path):
    monitor = MonitorFactory(owner=user)
    for _ in range(3):
        channel = ChannelFactory(owner=user)
        IncidentFactory(monitor=monitor)
        api.post("/api/v1/maintenance-windows/", {
            "name": "w", "monitors": [monitor.pk], "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-01-01T01:00:00Z",
        }, format="json")
        channel.notifications.create(monitor=monitor, event="down", context={})
    body = api.get(f"{path}?page_size=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]


# --- a page's cost -----------------------------------------------------------


def test_a_page_of_monitors_costs_the_same_queries_however_many_rows_it_holds(api, user):
    busy_monitors(user, 2)
    few, response = queries_of(api, "get", f"{MONITORS}?page_size=1000")
    assert response.status_code == 200 and len(response.json()["results"]) == 2
    busy_monitors(user, 40)
    many, response = queries_of(api, "get", f"{MONITORS}?page_size=1000")
    rows = response.json()["results"]
    # Everything per row comes from the page's own few queries ...
    assert len(rows) == 42 and many == few
    # ... and is still right: the dead region is named, the incident shown, alerts reach someone.
    assert {tuple(r["unserved_regions"]) for r in rows} == {("us-east",)}
    assert all(r["current_incident"] and r["alerting"] and len(r["channels"]) == 1 for r in rows)


def test_creating_a_monitor_costs_a_handful_of_queries(api, user):
    RegionFactory(name="eu-west")
    RegionFactory(name="us-east")
    channel = ChannelFactory(owner=user)
    count, response = queries_of(api, "post", MONITORS, item(1, regions=["eu-west", "us-east"], channels=[channel.pk]))
    assert response.status_code == 201, response.json()
    # The token, its team (with the caller's role), the regions, the channel, the slugs its name may
    # clash with, the row, its regions, its channels, its audit entry, the live regions.
    assert count <= 10
    assert response.json()["regions"] == ["eu-west", "us-east"] and response.json()["channels"] == [channel.pk]


# --- bulk create ---------------------------------------------------------------


def test_a_list_of_good_monitors_creates_them_all(api, user):
    RegionFactory(name="eu-west")
    default = ChannelFactory(owner=user, is_default=True)
    chosen = ChannelFactory(owner=user)
    items = [item(0), item(1, regions=["eu-west"], channels=[chosen.pk]), item(2, paused=True, channels=[])]
    response = api.post(MONITORS, items, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    # One answer per item, in order, each as a single create answers it.
    assert [m["name"] for m in created] == ["site 0", "site 1", "site 2"]
    assert [m["channels"] for m in created] == [[default.pk], [chosen.pk], []]
    assert [m["regions"] for m in created] == [[], ["eu-west"], []]
    assert [m["status"] for m in created] == ["pending", "pending", "paused"]
    # Stored as answered, owned by the caller, with the same defaults as a single create.
    stored = {m.name: m for m in Monitor.objects.prefetch_related("channels", "regions")}
    assert set(stored) == {"site 0", "site 1", "site 2"} and {m.owner for m in stored.values()} == {user}
    assert [c.pk for c in stored["site 0"].channels.all()] == [default.pk]
    assert [r.name for r in stored["site 1"].regions.all()] == ["eu-west"]
    assert stored["site 2"].paused and not stored["site 2"].channels.exists()
    assert [m["id"] for m in created] == [stored[f"site {i}"].pk for i in range(3)]


def test_a_region_named_twice_is_chosen_once(api, user):
    RegionFactory(name="eu-west")
    response = api.post(MONITORS, [item(0, regions=["eu-west", "eu-west"])], format="json")
    assert response.status_code == 201 and response.json()[0]["regions"] == ["eu-west"]
    assert Monitor.objects.get().regions.count() == 1


def test_one_bad_item_refuses_the_list_with_that_items_errors_and_creates_nothing(api, user):
    items = [item(0), item(1, interval=10**9), item(2), item(3, url="ftp://nope", regions=["atlantis"])]
    response = api.post(MONITORS, items, format="json")
    assert response.status_code == 400
    errors = response.json()
    # Keyed by the bad items' positions, each naming its fields.
    assert set(errors) == {"1", "3"}
    assert set(errors["1"]) == {"interval"}
    assert set(errors["3"]) == {"url", "regions"}
    assert not Monitor.objects.exists()


def test_an_item_is_refused_by_the_models_own_rules_as_a_single_create_is(api, user):
    # timeout ≥ interval is Monitor.clean()'s rule, not the serializer's.
    single = api.post(MONITORS, item(0, interval=60, timeout=60), format="json")
    listed = api.post(MONITORS, [item(0), item(1, interval=60, timeout=60)], format="json")
    assert single.status_code == listed.status_code == 400
    assert listed.json() == {"1": single.json()}
    assert not Monitor.objects.exists()


def test_every_item_gets_the_very_errors_a_single_create_would_give(api, user):
    from tests.monitors.test_api_bad_input import FIELDS, VALID, WEIRD_VALUES

    RegionFactory(name="local")
    items = [{**VALID, field: value} for field in FIELDS for value in WEIRD_VALUES]
    singles = [api.post(MONITORS, body, format="json") for body in items]
    assert all(r.status_code in (201, 400) for r in singles)
    Monitor.objects.all().delete()
    response = api.post(MONITORS, items, format="json")
    assert response.status_code == 400
    expected = {str(i): r.json() for i, r in enumerate(singles) if r.status_code == 400}
    assert response.json() == expected
    assert not Monitor.objects.exists()


def test_another_users_channel_in_one_item_refuses_the_list(api, user, other_user):
    theirs = ChannelFactory(owner=other_user)
    response = api.post(MONITORS, [item(0), item(1, channels=[theirs.pk])], format="json")
    assert response.status_code == 400 and set(response.json()["1"]) == {"channels"}
    assert not Monitor.objects.exists()


def test_a_list_longer_than_the_cap_is_refused_whole(api, user):
    response = api.post(MONITORS, [item(i) for i in range(MAX_BULK_CREATE + 1)], format="json")
    assert response.status_code == 400
    assert f"no more than {MAX_BULK_CREATE}" in str(response.json()["non_field_errors"])
    assert not Monitor.objects.exists()


def test_a_list_of_the_cap_creates_them_all_in_a_few_queries(api, user):
    RegionFactory(name="eu-west", last_seen_at=timezone.now())
    default = ChannelFactory(owner=user, is_default=True)
    items = [item(i, regions=["eu-west"]) for i in range(MAX_BULK_CREATE)]
    count, response = queries_of(api, "post", MONITORS, items)
    assert response.status_code == 201
    assert Monitor.objects.filter(owner=user, channels=default, regions__name="eu-west").count() == MAX_BULK_CREATE
    # Rows and links go in statements of hundreds; nothing is done per monitor.
    assert count <= 15


@pytest.mark.parametrize("body", [[], [None], [1], ["x"], [[]], [[item(0)]]])
def test_an_empty_list_or_items_that_are_not_monitors_are_a_400(api, user, body):
    response = api.post(MONITORS, body, format="json")
    assert response.status_code == 400
    assert not Monitor.objects.exists()


def test_a_list_is_not_an_update(api, user):
    monitor = MonitorFactory(owner=user)
    for method in ("put", "patch"):
        response = getattr(api, method)(f"{MONITORS}{monitor.pk}/", [item(0)], format="json")
        assert response.status_code == 400


def test_the_openapi_schema_says_a_list_may_be_posted(api):
    schema = api.get("/api/schema/?format=json").json()
    assert "list of up to" in schema["paths"]["/api/v1/monitors/"]["post"]["description"]
    page_size = [p for p in schema["paths"]["/api/v1/monitors/"]["get"]["parameters"] if p["name"] == "page_size"]
    assert page_size
