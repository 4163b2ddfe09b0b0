"""Upgrading to slugs (after teams): every existing object gets its name's
slug, numbered within its team, so that a team's export names each one."""

from __future__ import annotations

import pytest

from tests.teams.test_migration import executor_leaf_nodes, migrate

BEFORE = [("monitors", "0011_teams_owned_by_teams"), ("notifications", "0007_teams_owned_by_teams")]
AFTER = [("monitors", "0012_config_slug_managed"), ("notifications", "0008_config_slug_managed")]


@pytest.fixture
def before_slugs(transactional_db):
    apps = migrate(BEFORE)
    yield apps
    migrate(executor_leaf_nodes())


def test_existing_objects_get_slugs_numbered_within_their_team(before_slugs):
    apps = before_slugs
    Team = apps.get_model("teams", "Team")
    Monitor, Channel = apps.get_model("monitors", "Monitor"), apps.get_model("notifications", "Channel")
    ops, web = Team.objects.create(name="ops"), Team.objects.create(name="web")
    for team, count in ((ops, 2), (web, 1)):
        for _ in range(count):
            Monitor.objects.create(team=team, name="Shop API", url="http://127.0.0.1:9/")
            Channel.objects.create(team=team, name="Ops mail", kind="email", target="a@example.com")

    apps = migrate(AFTER)

    for model, base in ((apps.get_model("monitors", "Monitor"), "shop-api"),
                        (apps.get_model("notifications", "Channel"), "ops-mail")):
        slugs = sorted(model.objects.values_list("team__name", "slug"))
        assert slugs == [("ops", base), ("ops", f"{base}-2"), ("web", base)]
