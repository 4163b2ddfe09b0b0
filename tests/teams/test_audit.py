"""The audit log: every change to a team's objects, members and tokens,
with who made it and what changed (secrets never), for admins and owners."""

from __future__ import annotations

import pytest

from teams.choices import Role
from teams.models import AuditEntry, Membership
from tests.factories import ChannelFactory, MonitorFactory, TeamFactory, UserFactory, client_of, member

pytestmark = pytest.mark.django_db

LOG = "/api/v1/audit-log/"


def actions(**filters) -> list[tuple[str, str]]:
    return list(AuditEntry.objects.filter(**filters).order_by("id").values_list("action", "object_type"))


def test_monitor_changes_are_logged_with_their_fields_old_and_new(user, api):
    created = api.post("/api/v1/monitors/", {"name": "site", "url": "http://127.0.0.1:9/"}, format="json").json()
    url = f"/api/v1/monitors/{created['id']}/"
    api.patch(url, {"name": "site 2", "interval": 120}, format="json")
    api.patch(url, {"paused": True}, format="json")
    api.patch(url, {"paused": False}, format="json")
    api.delete(url)
    assert actions(object_id=str(created["id"])) == [
        ("create", "monitor"), ("update", "monitor"), ("pause", "monitor"), ("resume", "monitor"),
        ("delete", "monitor")]
    update = AuditEntry.objects.get(action="update")
    assert update.changes["name"] == ["site", "site 2"] and update.changes["interval"] == [60, 120]
    assert update.actor == user and update.actor_name == "alice" and update.token_name == "tests"
    assert update.team.personal_of == user


def test_a_change_that_changes_nothing_is_not_logged(user, api):
    created = api.post("/api/v1/monitors/", {"name": "site", "url": "http://127.0.0.1:9/"}, format="json").json()
    url = f"/api/v1/monitors/{created['id']}/"
    assert api.patch(url, {"name": "site", "interval": created["interval"]}, format="json").status_code == 200
    assert api.put(url, {"name": "site", "url": "http://127.0.0.1:9/"}, format="json").status_code == 200
    assert actions(object_id=str(created["id"])) == [("create", "monitor")]
    assert api.get(url).json()["slug"] == "site"  # a PUT without a slug keeps it


def test_secrets_never_reach_the_log(user, api):
    channel = api.post("/api/v1/channels/", {"name": "tg", "kind": "telegram", "target": "-1001234567890",
                                            "secret": "123456:bot-token-value-ABCDEFGHIJKLMNOPQRSTUVW"},
                       format="json").json()
    api.patch(f"/api/v1/channels/{channel['id']}/", {"secret": "654321:new-bot-token-ABCDEFGHIJKLMNOPQRSTUVW"},
              format="json")
    webhook = ChannelFactory(owner=user, kind="webhook", target="https://hooks.example.com/", secret="whsec_b2xk")
    api.post(f"/api/v1/channels/{webhook.pk}/rotate-secret/")
    entries = AuditEntry.objects.filter(object_type="channel")
    assert [e.action for e in entries.order_by("id")] == ["create", "update", "rotate-secret"]
    assert entries.get(action="update").changes["secret"] == ["[redacted]", "[redacted]"]
    text = str(list(entries.values()))
    assert "bot-token" not in text and "whsec_" not in text


def test_member_and_token_changes_are_logged_in_their_team(user, api):
    team = TeamFactory(name="ops")
    member(team, user, Role.OWNER)
    UserFactory(username="bob")
    added = api.post(f"/api/v1/teams/{team.pk}/members/", {"username": "bob", "role": "viewer"}, format="json").json()
    api.patch(f"/api/v1/teams/{team.pk}/members/{added['id']}/", {"role": "editor"}, format="json")
    api.delete(f"/api/v1/teams/{team.pk}/members/{added['id']}/")
    token = api.post("/api/v1/tokens/", {"name": "ci", "team": team.pk}, format="json").json()
    api.delete(f"/api/v1/tokens/{token['id']}/")
    assert actions(team=team) == [("member-add", "membership"), ("member-change", "membership"),
                                  ("member-remove", "membership"), ("token-create", "apitoken"),
                                  ("token-revoke", "apitoken")]
    assert AuditEntry.objects.get(action="member-change").changes == {"role": ["viewer", "editor"]}


def test_the_log_is_for_admins_and_owners_of_the_team_and_filters_by_it(user, api):
    team = TeamFactory(name="ops")
    member(team, user, Role.ADMIN)
    monitor = MonitorFactory(owner=user, team=team)
    api.patch(f"/api/v1/monitors/{monitor.pk}/", {"name": "renamed"}, format="json")
    listed = api.get(f"{LOG}?team={team.pk}&object_type=monitor&actor=alice").json()["results"]
    assert [(e["action"], e["object_id"]) for e in listed] == [("update", str(monitor.pk))]
    assert api.get(f"{LOG}?team={team.pk}&since=2999-01-01T00:00:00Z").json()["results"] == []
    viewer = UserFactory(username="viewer")
    member(team, viewer, Role.VIEWER)
    assert client_of(viewer).get(f"{LOG}?team={team.pk}").status_code == 403
    # Their own (personal team's) log holds nothing of this team.
    assert client_of(viewer).get(LOG).json()["results"] == []


def test_a_refused_change_leaves_no_entry(user, api):
    team = TeamFactory(name="ops")
    member(team, user, Role.VIEWER)
    monitor = MonitorFactory(team=team)
    assert api.patch(f"/api/v1/monitors/{monitor.pk}/", {"name": "x"}, format="json").status_code == 403
    assert not AuditEntry.objects.exists()
    assert Membership.objects.filter(team=team).count() == 1
