"""The status pages' admin: a staff user's own pages only, components only
of the page owner's monitors, and a notice that follows its latest update."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from statuspages.models import StatusPage
from tests.factories import MonitorFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    user = UserFactory(username="carol", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="statuspages"))
    client = Client()
    client.force_login(user)
    return user, client


def form(monitor_ids: list[int], **extra) -> dict:
    data = {"name": "Ours", "slug": "ours", "public": "on", "description": "",
            "components-TOTAL_FORMS": str(len(monitor_ids)), "components-INITIAL_FORMS": "0",
            "components-MIN_NUM_FORMS": "0", "components-MAX_NUM_FORMS": "1000", **extra}
    for index, pk in enumerate(monitor_ids):
        data.update({f"components-{index}-position": str(index), f"components-{index}-monitor": str(pk),
                     f"components-{index}-name": f"C{index}", f"components-{index}-group": ""})
    return data


def test_a_staff_user_adds_a_page_of_their_monitors_and_sees_only_their_pages(staff, other_user):
    user, client = staff
    mine = MonitorFactory(owner=user)
    StatusPage.objects.create(owner=other_user, name="Theirs", slug="theirs")
    response = client.post("/admin/statuspages/statuspage/add/", form([mine.pk]))
    assert response.status_code == 302, response.content.decode()[:2000]
    page = StatusPage.objects.get(slug="ours")
    assert page.owner == user and [c.monitor_id for c in page.components.all()] == [mine.pk]
    listing = client.get("/admin/statuspages/statuspage/").content.decode()
    assert "Ours" in listing and "Theirs" not in listing


def test_another_users_monitor_cannot_be_a_component(staff, other_user):
    _, client = staff
    theirs = MonitorFactory(owner=other_user)
    response = client.post("/admin/statuspages/statuspage/add/", form([theirs.pk]))
    assert response.status_code == 200  # the form again, with its error
    assert not StatusPage.objects.filter(slug="ours").exists()


def test_a_notice_added_in_the_admin_takes_its_latest_updates_status(staff):
    user, client = staff
    page = StatusPage.objects.create(owner=user, name="Ours", slug="ours")
    now = timezone.now()
    response = client.post("/admin/statuspages/statusreport/add/", {
        "page": str(page.pk), "title": "Slow", "created_at_0": now.strftime("%Y-%m-%d"),
        "created_at_1": now.strftime("%H:%M:%S"),
        "updates-TOTAL_FORMS": "1", "updates-INITIAL_FORMS": "0", "updates-MIN_NUM_FORMS": "0",
        "updates-MAX_NUM_FORMS": "1000", "updates-0-at_0": now.strftime("%Y-%m-%d"),
        "updates-0-at_1": now.strftime("%H:%M:%S"), "updates-0-status": "resolved", "updates-0-message": "Done.",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    report = page.reports.get()
    assert report.status == "resolved" and report.resolved_at is not None
