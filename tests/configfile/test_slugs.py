"""Every declarable object has a slug: made from its name, unique per team and type, shown in the API."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.test import Client

from monitors.models import Monitor
from notifications.models import EscalationPolicy
from teams.choices import Role
from tests.factories import ChannelFactory, MonitorFactory, TeamFactory, member

MONITORS = "/api/v1/monitors/"


def test_a_slug_is_made_from_the_name_and_numbered_when_taken(user, other_user):
    first = MonitorFactory(owner=user, name="Shop API")
    second = MonitorFactory(owner=user, name="Shop  API!")
    theirs = MonitorFactory(owner=other_user, name="Shop API")
    assert (first.slug, second.slug, theirs.slug) == ("shop-api", "shop-api-2", "shop-api")
    # Per type: a channel of the same name is another namespace.
    assert ChannelFactory(owner=user, name="Shop API").slug == "shop-api"


def test_the_api_shows_slug_and_managed_and_accepts_a_slug(api, user):
    created = api.post(MONITORS, {"name": "Shop", "url": "https://shop.example/", "slug": "the-shop"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["slug"] == "the-shop" and created.json()["managed"] is False
    # managed is read-only: only applying a file sets it.
    patched = api.patch(f"{MONITORS}{created.json()['id']}/", {"managed": True}, format="json")
    assert patched.status_code == 200 and patched.json()["managed"] is False
    assert "Warning" not in patched


def test_a_slug_taken_among_its_teams_monitors_is_a_400_naming_it(api, user):
    MonitorFactory(owner=user, name="Shop")
    answer = api.post(MONITORS, {"name": "Other", "url": "https://o.example/", "slug": "shop"}, format="json")
    assert answer.status_code == 400 and "slug" in answer.json()
    answer = api.post(MONITORS, {"name": "Other", "url": "https://o.example/", "slug": "not a slug"}, format="json")
    assert answer.status_code == 400 and "slug" in answer.json()


def test_monitors_created_in_a_list_get_distinct_slugs_and_a_slug_given_twice_is_a_400(api, user):
    MonitorFactory(owner=user, name="Site")
    items = [{"name": "Site", "url": f"https://s{i}.example/"} for i in range(3)]
    created = api.post(MONITORS, items, format="json")
    assert created.status_code == 201
    assert sorted(Monitor.objects.values_list("slug", flat=True)) == ["site", "site-2", "site-3", "site-4"]
    twice = [{"name": "A", "url": "https://a.example/", "slug": "x"}, {"name": "B", "url": "https://b.example/", "slug": "x"}]
    assert api.post(MONITORS, twice, format="json").status_code == 400


def test_moving_to_a_team_where_its_slug_is_taken_is_a_400_naming_slug(api, user):
    team = TeamFactory(name="web")
    member(team, user, Role.EDITOR)
    MonitorFactory(owner=user, team=team, name="Shop")
    mine = MonitorFactory(owner=user, name="Shop")
    answer = api.patch(f"{MONITORS}{mine.pk}/", {"team": team.pk}, format="json")
    assert answer.status_code == 400 and list(answer.json()) == ["slug"], answer.json()
    moved = api.patch(f"{MONITORS}{mine.pk}/", {"team": team.pk, "slug": "shop-web"}, format="json")
    assert moved.status_code == 200 and moved.json()["slug"] == "shop-web"


def test_moving_in_the_admin_to_a_team_where_its_slug_is_taken_is_refused_naming_team(user):
    team = TeamFactory(name="web")
    channel = ChannelFactory(owner=user, team=team)
    steps = [{"after_minutes": 0, "channels": [channel.pk]}]
    EscalationPolicy.objects.create(owner=user, team=team, name="Outages", steps=steps)
    mine = EscalationPolicy.objects.create(owner=user, name="Outages", steps=steps)
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "", "pw"))
    form = {"team": team.pk, "owner": user.pk, "name": "Outages", "steps": json.dumps(steps), "repeat_minutes": ""}
    page = client.post(f"/admin/notifications/escalationpolicy/{mine.pk}/change/", form)
    assert page.status_code == 200 and "has the slug &#x27;outages&#x27;" in page.content.decode()
    assert EscalationPolicy.objects.get(pk=mine.pk).team_id != team.pk
