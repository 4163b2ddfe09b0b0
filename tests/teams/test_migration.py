"""Upgrading changes nothing users see: each user's monitors, windows,
channels and policies move into their personal team, which they own."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("teams", None), ("monitors", "0010_admin_console_indexes"), ("notifications", "0006_event_choices_merged")]
AFTER = [("teams", "0002_personal_teams"), ("monitors", "0011_teams_owned_by_teams"),
         ("notifications", "0007_teams_owned_by_teams")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


@pytest.fixture
def before_teams(transactional_db):
    apps = migrate(BEFORE)
    yield apps
    migrate(executor_leaf_nodes())


def executor_leaf_nodes():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_each_users_objects_move_into_their_personal_team_and_stay_theirs(before_teams):
    apps = before_teams
    User = apps.get_model("auth", "User")
    Monitor, Window = apps.get_model("monitors", "Monitor"), apps.get_model("monitors", "MaintenanceWindow")
    Channel, Policy = apps.get_model("notifications", "Channel"), apps.get_model("notifications", "EscalationPolicy")
    alice, bob = User.objects.create(username="alice"), User.objects.create(username="bob")
    User.objects.create(username="nobody")  # owns nothing: still gets a team
    for user in (alice, bob):
        monitor = Monitor.objects.create(owner=user, name=f"{user.username}-m", url="http://127.0.0.1:9/")
        channel = Channel.objects.create(owner=user, name=f"{user.username}-c", kind="email", target="a@example.com")
        monitor.channels.add(channel)
        Window.objects.create(owner=user, name=f"{user.username}-w").monitors.add(monitor)
        Policy.objects.create(owner=user, name=f"{user.username}-p",
                              steps=[{"after_minutes": 0, "channels": [channel.pk]}])

    apps = migrate(AFTER)

    Team, Membership = apps.get_model("teams", "Team"), apps.get_model("teams", "Membership")
    # A personal team for every user, named after them, owned by them alone.
    assert sorted(Team.objects.values_list("name", "personal_of__username")) == [
        ("alice", "alice"), ("bob", "bob"), ("nobody", "nobody")]
    assert sorted(Membership.objects.values_list("team__name", "user__username", "role")) == [
        ("alice", "alice", "owner"), ("bob", "bob", "owner"), ("nobody", "nobody", "owner")]
    # Every object in its owner's personal team, the owner kept as its creator.
    for model_name in (("monitors", "Monitor"), ("monitors", "MaintenanceWindow"), ("notifications", "Channel"),
                       ("notifications", "EscalationPolicy")):
        rows = apps.get_model(*model_name).objects.values_list("name", "owner__username", "team__personal_of__username")
        assert len(rows) == 2 and all(name.startswith(f"{owner}-") and team == owner for name, owner, team in rows)
