"""A loopr.yaml describes one team's objects: the file's (or the request's)
`team`, else the caller's personal team; plan and export need the viewer
role there, apply the editor role; slugs are unique per team."""

from __future__ import annotations

import io
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction

from configfile.scope import ScopeError, scope_for
from monitors.models import Monitor
from notifications.models import Channel
from teams.choices import Role
from teams.models import Team
from tests.factories import ChannelFactory, MonitorFactory, TeamFactory, UserFactory, member

from .conftest import APPLY, EXPORT, apply_planned, changes_of, errors_of, plan, with_settings

FILE = """\
channels:
  - slug: ops
    name: Ops mail
    kind: email
    target: ops@example.com
monitors:
  - slug: shop
    name: Shop
    url: https://shop.example/
    channels: [ops]
"""


@pytest.fixture
def team(user):
    team = TeamFactory(name="payments")
    member(team, user, Role.EDITOR)
    return team


def test_a_file_naming_a_team_creates_its_objects_in_that_team_by_the_caller(api, user, team):
    apply_planned(api, FILE, team=team.pk)
    monitor = Monitor.objects.get(slug="shop")
    assert (monitor.team, monitor.owner, monitor.managed) == (team, user, True)
    assert list(monitor.channels.all()) == [Channel.objects.get(team=team, slug="ops")]
    # The caller's personal team is another scope: the same file plans everything there as new.
    assert [c["action"] for c in changes_of(api, FILE)] == ["create", "create"]


def test_slugs_are_unique_per_team_so_two_teams_keep_the_same_file(api, user, team):
    apply_planned(api, FILE, team=team.pk)
    apply_planned(api, FILE)
    personal = Team.objects.personal_for(user)
    assert set(Monitor.objects.filter(slug="shop").values_list("team", flat=True)) == {team.pk, personal.pk}
    assert changes_of(api, FILE, team=team.pk) == [] and changes_of(api, FILE) == []


def test_left_out_the_team_is_the_callers_personal_team_and_other_teams_objects_are_not_in_it(api, user, team):
    MonitorFactory(owner=user, team=team, name="Payments API")
    mine = MonitorFactory(owner=user, name="Blog")
    exported = api.get(EXPORT, {"format": "json"}).json()
    assert [m["slug"] for m in exported["monitors"]] == [mine.slug]
    theirs = api.get(EXPORT, {"format": "json", "team": team.pk}).json()
    assert [m["slug"] for m in theirs["monitors"]] == ["payments-api"]


def test_a_viewer_plans_and_exports_but_applying_is_a_403_naming_team(api, user, team):
    member(team, user, Role.VIEWER)
    MonitorFactory(team=team, name="Shop")
    assert [c["action"] for c in changes_of(api, FILE, team=team.pk)] == ["create", "update"]
    assert api.get(EXPORT, {"team": team.pk}).status_code == 200
    planned = plan(api, FILE, team=team.pk).json()
    applied = api.post(APPLY, with_settings(FILE, team=team.pk, revision=planned["revision"]),
                       content_type="application/yaml")
    assert applied.status_code == 403
    assert [e["path"] for e in applied.json()["errors"]] == ["team"]
    assert not Channel.objects.filter(team=team).exists()


@pytest.mark.parametrize("given", ["stranger", "missing", "not-a-number", True])
def test_a_team_that_is_not_the_callers_is_a_400_naming_team_as_if_it_did_not_exist(api, other_user, given):
    theirs = Team.objects.personal_for(other_user)
    MonitorFactory(owner=other_user, name="Secret")
    team = {"stranger": theirs.pk, "missing": theirs.pk + 1000}.get(given, given)
    assert list(errors_of(plan(api, FILE, team=team))) == ["team"]
    assert list(errors_of(api.post(APPLY, with_settings(FILE, team=team, revision="x"),
                                   content_type="application/yaml"))) == ["team"]
    assert list(errors_of(api.get(EXPORT, {"team": team}))) == ["team"]
    assert not Monitor.objects.filter(team=theirs, slug="shop").exists()


def test_a_file_refers_only_to_its_own_teams_channels(api, user, team):
    ChannelFactory(owner=user, name="Ops")  # slug "ops", in the personal team: not the file's
    text = FILE.split("monitors:")[1]
    assert errors_of(plan(api, "monitors:" + text, team=team.pk)) == {
        "monitors[0].channels": "No channel with the slug 'ops' (in this file or already there)."}
    assert changes_of(api, "monitors:" + text) != []  # in the personal team, the same file finds it


def test_the_command_plans_and_applies_for_the_team_it_is_given(tmp_path, user, team):
    path = tmp_path / "loopr.yaml"
    path.write_text(FILE)
    out = io.StringIO()
    call_command("loopr_config", "apply", "--user", user.username, "--team", str(team.pk), "-f", str(path),
                 stdout=out)
    assert "Applied 2 change(s)." in out.getvalue()
    assert Monitor.objects.get(slug="shop").team == team
    member(team, user, Role.VIEWER)
    with pytest.raises(CommandError, match="team: Your role in team"):
        call_command("loopr_config", "apply", "--user", user.username, "--team", str(team.pk), "-f",
                     str(path.with_name("loopr.yaml")), stdout=io.StringIO())
    outsider = UserFactory(username="carol")
    with pytest.raises(CommandError, match="No team with the id"):
        call_command("loopr_config", "export", "--user", outsider.username, "--team", str(team.pk), "-f", "-",
                     stdout=io.StringIO())


def _locked_backends() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("slug_given", [False, True])
@pytest.mark.django_db(transaction=True)
def test_two_creations_of_one_name_at_once_are_never_a_500(api, user, slug_given):
    """Another writer inserts the slug a creation found free, and commits
    while the creation's insert waits on it: the creation takes the next
    number (or, for a slug it was given, is a 400 naming `slug`)."""
    if connection.vendor != "postgresql":
        pytest.skip("the race is PostgreSQL's unique index wait")
    personal = Team.objects.personal_for(user)
    inserted, commit = threading.Event(), threading.Event()
    answers = []

    def other_writer():
        try:
            with transaction.atomic():
                MonitorFactory(owner=user, team=personal, name="Shop")
                inserted.set()
                commit.wait(30)
        finally:
            connections.close_all()

    def creation():
        try:
            body = {"name": "Shop", "url": "https://shop.example/", **({"slug": "shop"} if slug_given else {})}
            answers.append(api.post("/api/v1/monitors/", body, format="json"))
        finally:
            connections.close_all()

    writer = threading.Thread(target=other_writer)
    writer.start()
    assert inserted.wait(30)
    creator = threading.Thread(target=creation)
    creator.start()
    deadline = time.monotonic() + 30
    while _locked_backends() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _locked_backends() == 1, "the creation's insert never waited on the other writer's row"
    commit.set()
    writer.join(30)
    creator.join(30)
    [answer] = answers
    if slug_given:
        assert answer.status_code == 400 and list(answer.json()) == ["slug"]
        assert Monitor.objects.filter(team=personal).count() == 1
    else:
        assert answer.status_code == 201, answer.content
        assert answer.json()["slug"] == "shop-2"
        assert sorted(Monitor.objects.filter(team=personal).values_list("slug", flat=True)) == ["shop", "shop-2"]


def test_a_team_token_plans_only_its_team(user, team):
    """A token limited to a team (loopr.api.token_team): its team is the
    default, and naming another of the user's teams is as unknown as a
    stranger's."""
    personal = Team.objects.personal_for(user)
    assert scope_for(user, None, Role.VIEWER, token_team=team.pk).team == team
    assert scope_for(user, str(team.pk), Role.EDITOR, token_team=team.pk).team == team
    with pytest.raises(ScopeError):
        scope_for(user, personal.pk, Role.VIEWER, token_team=team.pk)
    assert scope_for(user, None, Role.VIEWER).team == personal
