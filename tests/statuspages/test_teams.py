"""Status pages belong to a team like everything else: born in the caller's
personal team (or the one named), showing only that team's monitors,
previewed by its members, changed by its editors."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from statuspages.models import StatusPage
from teams.models import ApiToken, Team
from tests.factories import MonitorFactory, TeamFactory, UserFactory, member

pytestmark = pytest.mark.django_db


def client_of(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.cli_key(user)}")
    return client


@pytest.fixture
def ops(user):
    team = TeamFactory(name="ops")
    member(team, user, "editor")
    return team


def test_a_page_is_born_in_the_callers_personal_team_or_the_one_named(api, user, ops):
    personal = Team.objects.personal_for(user)
    mine = MonitorFactory(owner=user)
    body = api.post("/api/v1/status-pages/", {"name": "A", "slug": "a", "components": [{"monitor": mine.pk}]},
                    format="json").json()
    assert body["team"] == personal.pk
    shared = MonitorFactory(owner=user, team=ops)
    response = api.post("/api/v1/status-pages/", {"name": "B", "slug": "b", "team": ops.pk,
                                                  "components": [{"monitor": shared.pk}]}, format="json")
    assert response.status_code == 201, response.json()
    assert StatusPage.objects.get(slug="b").team == ops


def test_a_monitor_of_another_of_the_callers_teams_is_a_400(api, user, ops):
    elsewhere = MonitorFactory(owner=user, team=ops)  # visible to the caller, but not of the page's team
    response = api.post("/api/v1/status-pages/", {"name": "A", "slug": "a", "components": [{"monitor": elsewhere.pk}]},
                        format="json")
    assert response.status_code == 400
    assert "monitor" in response.json()["components"]["0"]


def test_members_preview_an_unpublished_page_and_only_editors_write_notices(user, ops):
    page = StatusPage.objects.create(owner=user, team=ops, name="Ops", slug="ops", public=False)
    viewer, outsider = UserFactory(username="vic"), UserFactory(username="out")
    member(ops, viewer, "viewer")
    browser = Client()
    browser.force_login(viewer)
    assert browser.get("/status/ops/").status_code == 200
    browser.force_login(outsider)
    assert browser.get("/status/ops/").status_code == 404
    response = client_of(viewer).post("/api/v1/status-reports/", {"page": page.pk, "title": "x", "message": "y"},
                                      format="json")
    assert response.status_code == 403
    assert client_of(viewer).get(f"/api/v1/status-pages/{page.pk}/").status_code == 200
    assert client_of(viewer).patch(f"/api/v1/status-pages/{page.pk}/", {"public": True},
                                   format="json").status_code == 403
    editor = client_of(user)
    assert editor.post("/api/v1/status-reports/", {"page": page.pk, "title": "x", "message": "y"},
                       format="json").status_code == 201
