"""Everything belongs to a team: its members see it, editors change it,
anyone else finds nothing there (a 404), a viewer's write is a 403."""

from __future__ import annotations

import pytest

from monitors.models import MaintenanceWindow, Monitor
from notifications.models import Channel
from teams.choices import Role
from teams.models import Membership, Team
from tests.factories import (
    ChannelFactory,
    IncidentFactory,
    MaintenanceWindowFactory,
    MonitorFactory,
    TeamFactory,
    UserFactory,
    client_of,
    member,
)

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"


@pytest.fixture
def team():
    return TeamFactory(name="ops")


def test_every_new_user_gets_a_personal_team_they_own():
    carol = UserFactory(username="carol")
    team = Team.objects.get(personal_of=carol)
    assert team.name == "carol" and team.role_of(carol) == Role.OWNER


def test_a_monitor_created_without_a_team_goes_to_its_creators_personal_team(user, api):
    created = api.post(MONITORS, {"name": "m", "url": "http://127.0.0.1:9/"}, format="json")
    assert created.status_code == 201
    personal = Team.objects.personal_for(user)
    assert created.json()["team"] == personal.pk
    assert Monitor.objects.get(pk=created.json()["id"]).owner == user


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.OWNER])
def test_every_member_sees_the_teams_monitors(team, role):
    monitor = MonitorFactory(owner=UserFactory(username="creator"), team=team)
    reader = UserFactory(username="reader")
    member(team, reader, role)
    client = client_of(reader)
    # Listed, retrieved, and its incidents found through ?monitor=.
    assert [m["id"] for m in client.get(MONITORS).json()["results"]] == [monitor.pk]
    assert client.get(f"{MONITORS}{monitor.pk}/").status_code == 200
    incident = IncidentFactory(monitor=monitor)
    assert [i["id"] for i in client.get(f"/api/v1/incidents/?monitor={monitor.pk}").json()["results"]] == [incident.pk]


def test_a_non_member_finds_nothing_of_the_team_as_if_it_did_not_exist(team):
    monitor = MonitorFactory(team=team)
    incident = IncidentFactory(monitor=monitor)
    stranger = client_of(UserFactory(username="stranger"))
    assert stranger.get(MONITORS).json()["results"] == []
    for url in (f"{MONITORS}{monitor.pk}/", f"{MONITORS}{monitor.pk}/results/", f"/api/v1/incidents/{incident.pk}/"):
        assert stranger.get(url).status_code == 404, url
    assert stranger.patch(f"{MONITORS}{monitor.pk}/", {"name": "x"}, format="json").status_code == 404
    assert stranger.delete(f"{MONITORS}{monitor.pk}/").status_code == 404
    # Filters by another team's monitor find nothing either.
    assert stranger.get(f"/api/v1/incidents/?monitor={monitor.pk}").json()["results"] == []


def test_a_viewer_may_read_but_every_write_is_a_403(team):
    monitor = MonitorFactory(team=team)
    viewer = UserFactory(username="viewer")
    member(team, viewer, Role.VIEWER)
    client = client_of(viewer)
    assert client.patch(f"{MONITORS}{monitor.pk}/", {"name": "x"}, format="json").status_code == 403
    assert client.delete(f"{MONITORS}{monitor.pk}/").status_code == 403
    created = client.post(MONITORS, {"name": "m", "url": "http://127.0.0.1:9/", "team": team.pk}, format="json")
    assert created.status_code == 403 and "team" in created.json()
    # Nothing changed.
    assert Monitor.objects.get(pk=monitor.pk).name == monitor.name and Monitor.objects.filter(team=team).count() == 1


def test_an_editor_creates_changes_and_deletes_the_teams_monitors(team):
    editor = UserFactory(username="editor")
    member(team, editor, Role.EDITOR)
    client = client_of(editor)
    created = client.post(MONITORS, {"name": "m", "url": "http://127.0.0.1:9/", "team": team.pk}, format="json")
    assert created.status_code == 201 and created.json()["team"] == team.pk
    url = f"{MONITORS}{created.json()['id']}/"
    assert client.patch(url, {"name": "renamed"}, format="json").status_code == 200
    assert client.delete(url).status_code == 204


def test_creating_in_a_team_the_caller_is_not_in_is_a_400_naming_team(user, api, team):
    refused = api.post(MONITORS, {"name": "m", "url": "http://127.0.0.1:9/", "team": team.pk}, format="json")
    assert refused.status_code == 400 and "team" in refused.json()
    assert not Monitor.objects.filter(team=team).exists()


def test_a_monitor_cannot_use_a_channel_of_another_team_even_one_the_caller_edits(user, api, team):
    member(team, user, Role.EDITOR)
    theirs = ChannelFactory(owner=user, team=team)
    refused = api.post(MONITORS, {"name": "m", "url": "http://127.0.0.1:9/", "channels": [theirs.pk]}, format="json")
    assert refused.status_code == 400 and "channels" in refused.json()
    # Unknown (another team's, invisible) is a 400 naming the field too.
    hidden = ChannelFactory(owner=UserFactory(username="zed"))
    refused = api.post(MONITORS, {"name": "m", "url": "http://127.0.0.1:9/", "channels": [hidden.pk]}, format="json")
    assert refused.status_code == 400 and "channels" in refused.json()
    # In the channel's team, it is accepted.
    accepted = api.post(MONITORS, {"name": "m", "url": "http://127.0.0.1:9/", "channels": [theirs.pk],
                                   "team": team.pk}, format="json")
    assert accepted.status_code == 201, accepted.json()


def test_a_new_monitor_gets_its_teams_default_channels_not_its_creators(user, api, team):
    member(team, user, Role.EDITOR)
    team_default = ChannelFactory(owner=UserFactory(username="lead"), team=team, is_default=True)
    ChannelFactory(owner=user, is_default=True)  # the creator's personal default
    created = api.post(MONITORS, {"name": "m", "url": "http://127.0.0.1:9/", "team": team.pk}, format="json")
    assert created.json()["channels"] == [team_default.pk]


def test_moving_a_monitor_needs_editor_in_the_destination_and_brings_no_foreign_references(user, api, team):
    monitor = MonitorFactory(owner=user)
    member(team, user, Role.VIEWER)
    url = f"{MONITORS}{monitor.pk}/"
    assert api.patch(url, {"team": team.pk}, format="json").status_code == 403
    member(team, user, Role.EDITOR)
    monitor.channels.add(ChannelFactory(owner=user))  # of the personal team
    refused = api.patch(url, {"team": team.pk}, format="json")
    assert refused.status_code == 400 and "channels" in refused.json()
    moved = api.patch(url, {"team": team.pk, "channels": []}, format="json")
    assert moved.status_code == 200 and Monitor.objects.get(pk=monitor.pk).team == team


def test_a_monitor_in_a_window_of_its_team_cannot_move_away_from_it(user, api, team):
    member(team, user, Role.EDITOR)
    monitor = MonitorFactory(owner=user)
    MaintenanceWindowFactory(owner=user, monitors=[monitor])
    refused = api.patch(f"{MONITORS}{monitor.pk}/", {"team": team.pk}, format="json")
    assert refused.status_code == 400 and "team" in refused.json()


def test_a_window_takes_only_monitors_of_its_team(user, api, team):
    member(team, user, Role.EDITOR)
    other = MonitorFactory(owner=user, team=team)
    refused = api.post("/api/v1/maintenance-windows/", {
        "name": "w", "kind": "once", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T01:00:00Z",
        "monitors": [other.pk]}, format="json")
    assert refused.status_code == 400 and "monitors" in refused.json()
    assert not MaintenanceWindow.objects.exists()


def test_an_escalation_policy_takes_only_channels_of_its_team(user, api, team):
    member(team, user, Role.EDITOR)
    other = ChannelFactory(owner=user, team=team)
    refused = api.post("/api/v1/escalation-policies/", {
        "name": "p", "steps": [{"after_minutes": 0, "channels": [other.pk]}]}, format="json")
    assert refused.status_code == 400 and "steps" in refused.json()
    accepted = api.post("/api/v1/escalation-policies/", {
        "name": "p", "team": team.pk, "steps": [{"after_minutes": 0, "channels": [other.pk]}]}, format="json")
    assert accepted.status_code == 201, accepted.json()


def test_a_superuser_sees_every_teams_objects(team):
    monitor = MonitorFactory(team=team)
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    assert client_of(root).get(f"{MONITORS}{monitor.pk}/").status_code == 200


def test_objects_stay_when_their_creator_is_deleted_but_a_personal_team_goes_with_its_user(team):
    creator = UserFactory(username="leaver")
    member(team, creator, Role.EDITOR)
    shared = MonitorFactory(owner=creator, team=team)
    personal = MonitorFactory(owner=creator)
    creator.delete()
    assert Monitor.objects.filter(pk=shared.pk, owner=None).exists()
    assert not Monitor.objects.filter(pk=personal.pk).exists()
    assert not Membership.objects.filter(user_id=creator.pk).exists()
    assert Channel.objects.count() == 0
