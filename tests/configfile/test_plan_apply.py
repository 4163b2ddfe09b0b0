"""Plan and apply a loopr.yaml: round trips for each type, drift, prune, the 409."""

from __future__ import annotations

import pytest
import yaml
from django.contrib.auth.models import Permission

from monitors.models import MaintenanceWindow, Monitor
from notifications.models import Channel, EscalationPolicy
from tests.configfile.conftest import (
    APPLY,
    EXAMPLE_VARIABLES,
    EXPORT,
    apply_planned,
    changes_of,
    plan,
    readme_example,
    with_settings,
)
from tests.factories import ChannelFactory, MonitorFactory

CHANNEL = """
channels:
  - slug: ops
    name: Ops
    kind: email
    target: " ops@example.com "
"""
POLICY = CHANNEL + """
escalation_policies:
  - slug: wake
    name: Wake
    steps: [{after_minutes: 0, channels: [ops]}, {after_minutes: 10, channels: [ops]}]
"""
MONITOR = POLICY + """
monitors:
  - slug: shop
    name: Shop
    url: https://shop.example/
    interval: 60
    timeout: 5
    assertions: [{source: status, op: eq, value: 200}]
    channels: [ops]
    escalation_policy: wake
"""
WINDOW = MONITOR + """
maintenance_windows:
  - slug: deploys
    name: Deploys
    kind: weekly
    weekdays: [1, 3]
    start_time: "09:30"
    duration_minutes: 30
    monitors: [shop]
"""
TYPES = [("channel", CHANNEL, Channel), ("escalation_policy", POLICY, EscalationPolicy),
         ("monitor", MONITOR, Monitor), ("maintenance_window", WINDOW, MaintenanceWindow)]


@pytest.mark.parametrize(("kind", "text", "model"), TYPES, ids=[t[0] for t in TYPES])
def test_each_type_is_created_by_apply_and_then_plans_no_change_and_its_export_round_trips(
        api, user, kind, text, model):
    # The plan names the object; nothing is written by it.
    planned = changes_of(api, text)
    assert {(c["action"], c["type"]) for c in planned} >= {("create", kind)}
    assert not model.objects.exists()
    apply_planned(api, text)
    created = model.objects.get()
    assert created.owner == user and created.managed
    # The file now matches, and so does what export writes.
    assert changes_of(api, text) == []
    exported = api.get(EXPORT)
    assert exported.status_code == 200 and exported["Content-Type"].startswith("application/yaml")
    assert changes_of(api, exported.content.decode()) == []
    assert [item["slug"] for item in yaml.safe_load(exported.content)[f"{kind}s".replace("policys", "policies")]]


def test_a_plan_shows_each_field_a_create_sets_as_the_api_would_set_it(api, user):
    (create,) = changes_of(api, CHANNEL)
    # The email address stripped, as the channel's own validation does.
    assert create["action"] == "create" and create["slug"] == "ops"
    assert create["diff"]["target"] == [None, "ops@example.com"]
    assert create["diff"]["managed"] == [None, True]


def test_the_readme_example_applies_and_then_plans_no_change(api, user, eu_west):
    applied = apply_planned(api, readme_example(), variables=EXAMPLE_VARIABLES)
    assert len(applied["changes"]) == 7  # 2 channels, a policy, 3 monitors, a window
    assert changes_of(api, readme_example(), variables=EXAMPLE_VARIABLES) == []
    shop = Monitor.objects.get(slug="shop")
    assert shop.escalation_policy.slug == "wake-someone" and [c.slug for c in shop.channels.all()] == ["ops-mail"]
    assert Channel.objects.get(slug="opsgenie").secret == EXAMPLE_VARIABLES["OPSGENIE_API_KEY"]


def test_an_edit_through_the_api_is_warned_about_and_shows_as_drift_that_apply_undoes(api, user):
    apply_planned(api, MONITOR)
    shop = Monitor.objects.get(slug="shop")
    edited = api.patch(f"/api/v1/monitors/{shop.pk}/", {"interval": 120}, format="json")
    assert edited.status_code == 200 and edited.json()["managed"] is True
    assert edited["Warning"].startswith("299 loopr")
    # The drift, field by field, with the hand-made value first.
    (drift,) = changes_of(api, MONITOR)
    assert drift == {"action": "update", "type": "monitor", "slug": "shop", "diff": {"interval": [120, 60]}}
    apply_planned(api, MONITOR)
    shop.refresh_from_db()
    assert shop.interval == 60


def test_an_edit_in_the_admin_is_warned_about_and_shows_as_drift(api, user, client):
    apply_planned(api, MONITOR)
    shop = Monitor.objects.get(slug="shop")
    user.is_staff = True
    user.save()
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_monitor", "change_monitor"]))
    client.force_login(user)
    page = client.get(f"/admin/monitors/monitor/{shop.pk}/change/")
    assert "managed by a loopr.yaml" in page.content.decode()
    paused = client.post("/admin/monitors/monitor/", {"action": "pause_monitors", "_selected_action": [shop.pk]})
    assert paused.status_code == 302
    assert changes_of(api, MONITOR) == [
        {"action": "update", "type": "monitor", "slug": "shop", "diff": {"paused": [True, False]}}]


def test_prune_deletes_only_managed_objects_the_file_no_longer_lists(api, user):
    apply_planned(api, MONITOR + """
  - slug: old
    name: Old
    url: https://old.example/
""")
    by_hand = MonitorFactory(owner=user, name="By hand")
    # Left out of the file without prune: kept.
    assert changes_of(api, MONITOR) == []
    # With prune: only the managed one goes; the hand-made one stays.
    planned = changes_of(api, MONITOR, prune=True)
    assert [(c["action"], c["slug"]) for c in planned] == [("delete", "old")]
    apply_planned(api, MONITOR, prune=True)
    assert set(Monitor.objects.values_list("slug", flat=True)) == {"shop", by_hand.slug}


def test_a_hand_made_object_listed_by_its_slug_becomes_managed(api, user):
    channel = ChannelFactory(owner=user, name="Ops", kind="email", target="ops@example.com")
    assert channel.slug == "ops" and not channel.managed
    (adopted,) = changes_of(api, CHANNEL)
    assert adopted["action"] == "update" and adopted["diff"] == {"managed": [False, True]}


def test_apply_is_a_409_when_the_objects_changed_since_the_plan(api, user):
    apply_planned(api, MONITOR)
    text = MONITOR.replace("interval: 60", "interval: 90")
    revision = plan(api, text).json()["revision"]
    shop = Monitor.objects.get(slug="shop")
    assert api.patch(f"/api/v1/monitors/{shop.pk}/", {"name": "Shop!"}, format="json").status_code == 200
    answer = api.post(APPLY, with_settings(text, revision=revision), content_type="application/yaml")
    assert answer.status_code == 409
    shop.refresh_from_db()
    assert (shop.interval, shop.name) == (60, "Shop!")


def test_apply_is_a_409_when_the_file_changed_since_the_plan(api, user):
    revision = plan(api, CHANNEL).json()["revision"]
    answer = api.post(APPLY, with_settings(CHANNEL.replace("Ops", "Ops team"), revision=revision),
                      content_type="application/yaml")
    assert answer.status_code == 409
    assert not Channel.objects.exists()


def test_apply_without_a_revision_is_a_400_naming_it(api, user):
    answer = api.post(APPLY, CHANNEL, content_type="application/yaml")
    assert answer.status_code == 400 and answer.json()["errors"][0]["path"] == "revision"


def test_the_same_structure_as_json_plans_alike(api, user):
    body = {"channels": [{"slug": "ops", "name": "Ops", "kind": "email", "target": "ops@example.com"}]}
    answer = api.post("/api/v1/config/plan/", body, format="json")
    assert answer.status_code == 200 and answer.json()["changes"][0]["slug"] == "ops"


def test_another_users_objects_are_neither_planned_nor_exported(api, user, other_user):
    MonitorFactory(owner=other_user, name="Theirs")
    assert changes_of(api, "monitors: []", prune=True) == []
    assert yaml.safe_load(api.get(EXPORT).content)["monitors"] == []


def test_objects_inserted_without_a_slug_get_one_and_export_round_trips(api, user):
    Monitor.objects.bulk_create([Monitor(owner=user, name="Bulk", kind="http", url="https://bulk.example/", interval=60,
                                         timeout=5)])
    exported = api.get(EXPORT).content.decode()
    assert yaml.safe_load(exported)["monitors"][0]["slug"] == "bulk"
    # Made by hand: applying the export changes nothing but that the file now manages it.
    assert changes_of(api, exported) == [
        {"action": "update", "type": "monitor", "slug": "bulk", "diff": {"managed": [False, True]}}]
    apply_planned(api, exported)
    assert changes_of(api, api.get(EXPORT).content.decode()) == []
