"""Changes made in the admin to a team's objects are in its audit log as
the API's are, written in the same transaction; many-to-many fields and a
page's parts are in the changes; acknowledging an incident is logged
whichever way it is done."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from loopr.admin import AuditedAdmin
from monitors.acknowledgement import link_token
from monitors.models import Monitor
from notifications.models import Channel
from statuspages.models import StatusPage
from teams.choices import Role
from teams.models import AuditEntry, Team
from tests.factories import (
    ChannelFactory, IncidentFactory, MaintenanceWindowFactory, MonitorFactory, TeamFactory, UserFactory, member,
)
from tests.test_admin import channel_form, monitor_form, window_form

pytestmark = pytest.mark.django_db


@pytest.fixture
def root():
    return get_user_model().objects.create_superuser("root", "", "pw")


@pytest.fixture
def admin_client(root) -> Client:
    client = Client()
    client.force_login(root)
    return client


def entries(**filters) -> list[tuple[str, str, dict]]:
    return [(e.action, e.actor_name, e.changes) for e in AuditEntry.objects.filter(**filters).order_by("id")]


def test_every_team_owned_model_admin_writes_the_audit_log():
    # Team-owned: what a team's members see (the models' `visible_to`).
    owned = [model_admin for model, model_admin in admin.site._registry.items()
             if hasattr(model._default_manager, "visible_to") and model._meta.app_label != "teams"]
    assert len(owned) >= 9
    assert [type(m).__name__ for m in owned if not isinstance(m, AuditedAdmin)] == []


def test_a_monitor_added_changed_and_deleted_in_the_admin_is_logged_as_through_the_api(admin_client, user):
    assert admin_client.post("/admin/monitors/monitor/add/", monitor_form(user)).status_code == 302
    monitor = Monitor.objects.get()
    channel = ChannelFactory(owner=user, name="ops mail")
    url = f"/admin/monitors/monitor/{monitor.pk}/change/"
    assert admin_client.post(url, monitor_form(user, name="shop", channels=[channel.pk])).status_code == 302
    # Saved again unchanged: nothing to log.
    assert admin_client.post(url, monitor_form(user, name="shop", channels=[channel.pk])).status_code == 302
    assert admin_client.post(f"/admin/monitors/monitor/{monitor.pk}/delete/", {"post": "yes"}).status_code == 302
    logged = entries(object_type="monitor")
    assert [(action, actor) for action, actor, _ in logged] == [("create", "root"), ("update", "root"),
                                                                ("delete", "root")]
    # The fields that changed, the many-to-many channels among them (as sorted ids).
    assert logged[1][2] == {"name": ["site", "shop"], "channels": [[], [channel.pk]]}
    assert set(AuditEntry.objects.values_list("team", flat=True)) == {Team.objects.personal_for(user).pk}


def test_pausing_and_resuming_in_the_admin_is_logged_as_through_the_api(admin_client, user):
    monitor = MonitorFactory(owner=user, name="shop")
    admin_client.post("/admin/monitors/monitor/", {"action": "pause_monitors", "_selected_action": [monitor.pk]})
    admin_client.post("/admin/monitors/monitor/", {"action": "resume_monitors", "_selected_action": [monitor.pk]})
    # The form's tick box too.
    admin_client.post(f"/admin/monitors/monitor/{monitor.pk}/change/", monitor_form(user, name="shop", paused="on"))
    logged = entries(object_type="monitor")
    assert [action for action, _, _ in logged] == ["pause", "resume", "pause"]
    assert logged[0][2]["paused"] == [False, True] and logged[0][2]["status"] == ["pending", "paused"]
    assert logged[2][2]["paused"] == [False, True] and "name" not in logged[2][2]


def test_deleting_selected_objects_in_the_admin_logs_each(admin_client, user):
    monitors = [MonitorFactory(owner=user, name=name) for name in ("a", "b")]
    response = admin_client.post("/admin/monitors/monitor/", {
        "action": "delete_selected", "_selected_action": [m.pk for m in monitors], "post": "yes"})
    assert response.status_code == 302 and not Monitor.objects.exists()
    assert sorted(AuditEntry.objects.values_list("action", "object_repr")) == [("delete", "a"), ("delete", "b")]


def test_a_channels_changes_and_rotated_secret_in_the_admin_are_logged_without_the_secret(admin_client, user):
    assert admin_client.post("/admin/notifications/channel/add/", channel_form(user)).status_code == 302
    channel = Channel.objects.get()
    secret = channel.secret
    admin_client.post(f"/admin/notifications/channel/{channel.pk}/change/", channel_form(user, name="hook 2"))
    admin_client.post("/admin/notifications/channel/", {"action": "rotate_secret", "_selected_action": [channel.pk]})
    logged = entries(object_type="channel")
    assert [action for action, _, _ in logged] == ["create", "update", "rotate-secret"]
    assert logged[1][2] == {"name": ["hook", "hook 2"]}
    assert logged[2][2] == {"secret": ["[redacted]", "[redacted]"]}
    text = str(list(AuditEntry.objects.values()))
    assert secret not in text and Channel.objects.get().secret not in text


def test_a_windows_monitors_are_in_its_logged_changes_from_the_admin_and_the_api(admin_client, user, api):
    first, second = MonitorFactory(owner=user), MonitorFactory(owner=user)
    window = MaintenanceWindowFactory(owner=user, name="upgrade", monitors=[first])
    admin_client.post(f"/admin/monitors/maintenancewindow/{window.pk}/change/",
                      window_form(user, first, monitors=[first.pk, second.pk]))
    api.patch(f"/api/v1/maintenance-windows/{window.pk}/", {"monitors": [second.pk]}, format="json")
    logged = entries(object_type="maintenancewindow")
    assert logged[0][0] == "update" and logged[0][2]["monitors"] == [[first.pk], sorted([first.pk, second.pk])]
    assert logged[1][:2] == ("update", "alice") and logged[1][2]["monitors"] == [sorted([first.pk, second.pk]),
                                                                                   [second.pk]]


def test_a_monitors_channels_changed_through_the_api_are_in_its_logged_changes(user, api):
    monitor = MonitorFactory(owner=user)
    channels = [ChannelFactory(owner=user), ChannelFactory(owner=user)]
    api.patch(f"/api/v1/monitors/{monitor.pk}/", {"channels": [c.pk for c in reversed(channels)]}, format="json")
    api.patch(f"/api/v1/monitors/{monitor.pk}/", {"channels": []}, format="json")
    ids = sorted(c.pk for c in channels)
    assert [changes for _, _, changes in entries(action="update")] == [{"channels": [[], ids]},
                                                                        {"channels": [ids, []]}]


def test_a_status_pages_components_and_a_notices_updates_are_in_their_logged_changes(admin_client, user):
    monitor = MonitorFactory(owner=user)
    page = StatusPage.objects.create(owner=user, name="Ours", slug="ours")
    response = admin_client.post(f"/admin/statuspages/statuspage/{page.pk}/change/", {
        "name": "Ours", "slug": "ours", "public": "on", "description": "", "team": page.team_id, "owner": user.pk,
        "components-TOTAL_FORMS": "1", "components-INITIAL_FORMS": "0", "components-MIN_NUM_FORMS": "0",
        "components-MAX_NUM_FORMS": "1000", "components-0-position": "0", "components-0-monitor": monitor.pk,
        "components-0-name": "Shop", "components-0-group": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert entries(object_type="statuspage") == [
        ("update", "root", {"public": [False, True], "components": [[], ["Shop"]]})]

    now = timezone.now()
    report = page.reports.create(title="Slow")
    response = admin_client.post(f"/admin/statuspages/statusreport/{report.pk}/change/", {
        "page": page.pk, "title": "Slow", "created_at_0": now.strftime("%Y-%m-%d"),
        "created_at_1": now.strftime("%H:%M:%S"),
        "updates-TOTAL_FORMS": "1", "updates-INITIAL_FORMS": "0", "updates-MIN_NUM_FORMS": "0",
        "updates-MAX_NUM_FORMS": "1000", "updates-0-at_0": now.strftime("%Y-%m-%d"),
        "updates-0-at_1": now.strftime("%H:%M:%S"), "updates-0-status": "resolved", "updates-0-message": "Done.",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    (action, _, changes), = entries(object_type="statusreport")
    # The update posted, and the status the notice took from it (set after the inline was saved).
    assert action == "update" and changes["status"] == ["investigating", "resolved"]
    assert len(changes["updates"][1]) == 1 and changes["updates"][1][0].startswith("Resolved at")


def test_acknowledging_an_incident_is_logged_whichever_way(admin_client, user, api):
    monitor = MonitorFactory(owner=user, name="shop")
    by_api, by_admin, by_link = (IncidentFactory(monitor=monitor, started_at=timezone.now() - timedelta(minutes=m))
                                 for m in (30, 20, 10))
    assert api.post(f"/api/v1/incidents/{by_api.pk}/acknowledge/", {"note": "on it"},
                    format="json").status_code == 200
    admin_client.post("/admin/monitors/incident/", {"action": "acknowledge", "_selected_action": [by_admin.pk]})
    channel = ChannelFactory(owner=user, name="ops mail")
    Client().post(reverse("acknowledge", args=[link_token(by_link.pk, channel.pk)]), {"note": ""})
    logged = {int(e.object_id): e for e in AuditEntry.objects.filter(action="acknowledge")}
    assert {pk: (e.actor_name, e.token_name) for pk, e in logged.items()} == {
        by_api.pk: ("alice", "tests"), by_admin.pk: ("root", ""), by_link.pk: ("link sent to ops mail", "")}
    assert logged[by_api.pk].changes == {"acknowledged_by": [None, "alice"], "acknowledged_via": [None, "api"],
                                         "acknowledgement_note": [None, "on it"]}
    assert {e.team_id for e in logged.values()} == {monitor.team_id}


def test_a_change_refused_in_the_admin_leaves_no_entry(user):
    team = TeamFactory(name="ops")
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(content_type__app_label="monitors"))
    member(team, viewer, Role.VIEWER)
    monitor = MonitorFactory(owner=user, team=team, name="shop")
    client = Client()
    client.force_login(viewer)
    response = client.post(f"/admin/monitors/monitor/{monitor.pk}/change/", monitor_form(user, name="x"))
    assert response.status_code == 403
    # Invalid: the form again, and nothing logged either.
    member(team, viewer, Role.EDITOR)
    response = client.post(f"/admin/monitors/monitor/{monitor.pk}/change/", monitor_form(user, name="x", timeout=600))
    assert response.status_code == 200
    assert Monitor.objects.get().name == "shop" and not AuditEntry.objects.exists()
