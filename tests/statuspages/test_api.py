"""/api/v1/status-pages/ and /status-reports/: a page is its owner's, shows
only its owner's monitors, each once, and bad input is a 400 naming the field."""

from __future__ import annotations

import pytest

from statuspages.models import StatusPage
from tests.factories import MonitorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def monitors(user):
    return [MonitorFactory(owner=user, name=f"api {n}") for n in range(3)]


def page_body(monitors, **extra) -> dict:
    return {"name": "Acme", "slug": "acme", "public": True, "components": [
        {"monitor": monitors[0].pk, "name": "API", "group": "Core"},
        {"monitor": monitors[1].pk, "group": "Core"},
        {"monitor": monitors[2].pk, "name": "Website"},
    ], **extra}


def test_a_page_is_created_with_its_components_in_order(api, monitors):
    response = api.post("/api/v1/status-pages/", page_body(monitors), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["url"].endswith("/status/acme/")
    # Order kept; a component without a name takes its monitor's.
    assert [(c["name"], c["group"]) for c in body["components"]] == [("API", "Core"), ("api 1", "Core"),
                                                                        ("Website", "")]
    assert StatusPage.objects.get(slug="acme").owner.username == "alice"


def test_updating_the_components_replaces_them(api, monitors):
    pk = api.post("/api/v1/status-pages/", page_body(monitors), format="json").json()["id"]
    response = api.patch(f"/api/v1/status-pages/{pk}/", {"components": [{"monitor": monitors[2].pk}]}, format="json")
    assert response.status_code == 200, response.json()
    assert [c["monitor"] for c in response.json()["components"]] == [monitors[2].pk]


def test_another_users_monitor_or_a_monitor_twice_is_a_400_naming_the_component(api, monitors, other_user):
    stranger = MonitorFactory(owner=other_user)
    body = page_body(monitors)
    body["components"] += [{"monitor": stranger.pk}, {"monitor": monitors[0].pk}]
    response = api.post("/api/v1/status-pages/", body, format="json")
    assert response.status_code == 400
    errors = response.json()["components"]
    assert list(errors) == ["3", "4"]
    assert "no monitor with id" in errors["3"]["monitor"][0]
    assert "already" in errors["4"]["monitor"][0]
    assert not StatusPage.objects.exists()


@pytest.mark.parametrize("slug", ["has space", "ünï", "a/b", "", "x" * 101])
def test_a_malformed_slug_is_a_400_naming_slug(api, monitors, slug):
    response = api.post("/api/v1/status-pages/", page_body(monitors, slug=slug), format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["slug"]


def test_a_slug_taken_by_anyone_is_a_400_naming_slug(api, monitors, other_user):
    StatusPage.objects.create(owner=other_user, name="Theirs", slug="acme")
    response = api.post("/api/v1/status-pages/", page_body(monitors), format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["slug"]


@pytest.mark.parametrize("group", [5, {"type": "tabs"}, ["a"], True])
def test_a_group_that_is_not_a_name_is_a_400_naming_it(api, monitors, group):
    body = page_body(monitors)
    body["components"][1]["group"] = group
    response = api.post("/api/v1/status-pages/", body, format="json")
    assert response.status_code == 400
    assert "group" in response.json()["components"]["1"]


@pytest.mark.parametrize("components", ["x", [1], [{"name": "no monitor"}], [{"monitor": "1.5"}], [{"monitor": 10**30}]])
def test_malformed_components_are_a_400_naming_components(api, monitors, components):
    response = api.post("/api/v1/status-pages/", page_body(monitors, components=components), format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["components"]


def test_another_users_page_is_a_404(api, other_user):
    page = StatusPage.objects.create(owner=other_user, name="Theirs", slug="theirs")
    assert api.get(f"/api/v1/status-pages/{page.pk}/").status_code == 404
    assert api.get("/api/v1/status-pages/").json()["count"] == 0


def test_a_notice_takes_the_status_of_each_update_and_resolves(api, monitors):
    page = api.post("/api/v1/status-pages/", page_body(monitors), format="json").json()
    response = api.post("/api/v1/status-reports/", {"page": page["id"], "title": "Slow logins",
                                                     "monitors": [monitors[0].pk], "message": "Looking into it."},
                        format="json")
    assert response.status_code == 201, response.json()
    report = response.json()
    assert (report["status"], report["resolved_at"], report["monitors"]) == ("investigating", None, [monitors[0].pk])
    response = api.post(f"/api/v1/status-reports/{report['id']}/updates/",
                        {"status": "resolved", "message": "Fixed."}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "resolved" and body["resolved_at"] is not None
    assert [u["status"] for u in body["updates"]] == ["investigating", "resolved"]


def test_bad_notices_are_a_400_naming_the_field(api, monitors, other_user):
    page = api.post("/api/v1/status-pages/", page_body(monitors, components=[{"monitor": monitors[0].pk}]),
                    format="json").json()
    theirs = StatusPage.objects.create(owner=other_user, name="Theirs", slug="theirs")
    cases = [
        ({"page": theirs.pk, "title": "x", "message": "y"}, "page"),
        ({"page": page["id"], "title": "x"}, "message"),
        ({"page": page["id"], "title": "x", "message": "y", "monitors": [monitors[1].pk]}, "monitors"),
        ({"page": page["id"], "title": "x", "message": "y", "status": "on fire"}, "status"),
        ({"page": page["id"], "title": 7, "message": "y"}, "title"),
    ]
    for body, field in cases:
        response = api.post("/api/v1/status-reports/", body, format="json")
        assert response.status_code == 400, body
        assert field in response.json(), (body, response.json())


def test_notices_are_filtered_by_status_page_and_page_stays_the_list_page(api, monitors):
    first = api.post("/api/v1/status-pages/", page_body(monitors), format="json").json()
    second = api.post("/api/v1/status-pages/", page_body(monitors, slug="acme-2"), format="json").json()
    for page in (first, second):
        assert api.post("/api/v1/status-reports/", {"page": page["id"], "title": "Slow", "message": "Looking"},
                        format="json").status_code == 201
    listed = api.get(f"/api/v1/status-reports/?status_page={second['id']}&page=1")
    assert listed.status_code == 200, listed.json()
    assert [report["page"] for report in listed.json()["results"]] == [second["id"]]
    assert api.get("/api/v1/status-reports/?status_page=x").status_code == 400


def test_the_public_filter_takes_a_boolean_and_nothing_else(api, monitors):
    api.post("/api/v1/status-pages/", page_body(monitors, public=False), format="json")
    assert [p["slug"] for p in api.get("/api/v1/status-pages/?public=false").json()["results"]] == ["acme"]
    assert api.get("/api/v1/status-pages/?public=true").json()["results"] == []
    response = api.get("/api/v1/status-pages/?public=-58800")
    assert response.status_code == 400 and "public" in response.json()
