"""A staff user who is not a superuser walks every admin page they may open
and finds none of another user's names (each of bob's objects, and bob
himself, has a name that would show in any option, link or filter)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from monitors.models import CheckResult
from teams.models import ApiToken, AuditEntry, Team
from tests.factories import (
    ChannelFactory, IncidentFactory, MaintenanceWindowFactory, MonitorFactory, NotificationFactory, UserFactory,
)
from workers.models import Region

pytestmark = pytest.mark.django_db

# Django's and Loopr's own: the staff user may not open these (no permission).
OPERATOR_ONLY = {"auth", "django_celery_beat", "workers", "axes"}


def walk_pages(client: Client, objects_of) -> list[str]:
    pages = []
    for model, model_admin in admin.site._registry.items():
        app, name = model._meta.app_label, model._meta.model_name
        if app in OPERATOR_ONLY:
            continue
        base = f"/admin/{app}/{name}/"
        pages += [base, base + "add/"]
        pages += [f"{base}{pk}/change/" for pk in objects_of(model)]
        pages += [base + "?" + p for p in ("q=", "_facets=1", "all=")]
    return pages


def test_a_staff_user_finds_no_other_users_name_or_id_on_any_admin_page():
    staff = UserFactory(username="staffer", is_staff=True)
    staff.user_permissions.set(Permission.objects.exclude(content_type__app_label__in=OPERATOR_ONLY))
    bob = UserFactory(username="bob-the-other")
    region = Region.objects.get_or_create(name="local")[0]
    # Everything bob has, with names that would show if leaked.
    their_monitor = MonitorFactory(owner=bob, name="bobs-secret-monitor", url="http://bobs-secret-host.example/")
    their_channel = ChannelFactory(owner=bob, name="bobs-secret-channel", kind="webhook",
                                   target="https://bobs-secret-hook.example/", is_default=True)
    their_monitor.channels.set([their_channel])
    MaintenanceWindowFactory(owner=bob, name="bobs-secret-window", monitors=[their_monitor])
    incident = IncidentFactory(monitor=their_monitor, cause="bobs-secret-cause")
    NotificationFactory(channel=their_channel, monitor=their_monitor, incident=incident)
    CheckResult.objects.create(monitor=their_monitor, region=region, scheduled_at=timezone.now(),
                               checked_at=timezone.now(), ok=False, error_kind="status", error="bobs-secret-error")
    ApiToken.objects.issue(bob, "bobs-secret-token")
    AuditEntry.objects.create(team=Team.objects.personal_for(bob), actor=bob, actor_name=bob.username,
                              action="update", object_type="monitor", object_id=str(their_monitor.pk),
                              object_repr="bobs-secret-entry")
    # And the staff user's own, so that every page has something to show.
    mine = MonitorFactory(owner=staff, name="my-monitor")
    ChannelFactory(owner=staff, name="my-channel")
    MaintenanceWindowFactory(owner=staff, name="my-window", monitors=[mine])

    client = Client()
    client.force_login(staff)
    secrets = ["bob-the-other", "bobs-secret"]

    def objects_of(model):
        if model is Team:
            return list(Team.objects.of(staff).values_list("pk", flat=True))
        return list(model._default_manager.owned_by(staff).values_list("pk", flat=True)) if hasattr(
            model._default_manager, "owned_by") else []

    leaks = []
    for url in walk_pages(client, objects_of):
        response = client.get(url)
        assert response.status_code in (200, 302, 403), (url, response.status_code)
        text = response.content.decode()
        leaks += [(url, s) for s in secrets if s in text]
    assert leaks == []
