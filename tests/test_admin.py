from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from monitors.models import CheckResult
from tests.factories import MonitorFactory, RegionFactory
from workers.models import WorkerNode

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "", "pw"))
    return client


@pytest.fixture
def data(user):
    now = timezone.now()
    region = RegionFactory(name="eu-west", last_seen_at=now)
    WorkerNode.objects.create(name="probe1@eu", region=region, version="1", concurrency=8, last_heartbeat_at=now)
    monitors = [MonitorFactory(owner=user, name="up"), MonitorFactory(owner=user, name="off", paused=True)]
    monitors[0].regions.add(region)
    CheckResult.objects.create(monitor=monitors[0], region=region, node="probe1@eu", scheduled_at=now,
                               checked_at=now, ok=False, error_kind="timeout", error="timed out")
    return monitors


@pytest.mark.parametrize(
    "path",
    [
        "/admin/monitors/monitor/",
        "/admin/monitors/monitor/?status__exact=pending&paused__exact=0",
        "/admin/monitors/monitor/?q=up",
        "/admin/monitors/checkresult/",
        "/admin/monitors/checkresult/?ok__exact=0&error_kind__exact=timeout",
        "/admin/monitors/checkresult/?monitor__id__exact={monitor}",
        "/admin/workers/region/",
        "/admin/workers/workernode/",
        "/admin/monitors/monitor/{monitor}/change/",
        "/admin/monitors/monitor/add/",
        "/admin/monitors/checkresult/{result}/change/",
        "/admin/workers/region/{region}/change/",
        "/admin/workers/workernode/{node}/change/",
    ],
)
def test_admin_pages_render_with_data(admin_client, data, path):
    ids = {
        "monitor": data[0].pk, "result": CheckResult.objects.get().pk,
        "region": RegionFactory(name="eu-west").pk, "node": WorkerNode.objects.get().pk,
    }
    response = admin_client.get(path.format(**ids))
    assert response.status_code == 200


def test_the_pause_action_pauses_the_selected_monitors(admin_client, data):
    running, _ = data
    response = admin_client.post("/admin/monitors/monitor/", {
        "action": "pause_monitors", "_selected_action": [running.pk],
    }, follow=True)
    assert response.status_code == 200 and b"Paused 1 monitor(s)." in response.content
    running.refresh_from_db()
    assert (running.paused, running.status) == (True, "paused")


def test_the_resume_action_resumes_the_selected_monitors(admin_client, data):
    _, paused = data
    paused.pause()
    paused.save()
    response = admin_client.post("/admin/monitors/monitor/", {
        "action": "resume_monitors", "_selected_action": [paused.pk],
    }, follow=True)
    assert response.status_code == 200 and b"Resumed 1 monitor(s)." in response.content
    paused.refresh_from_db()
    assert (paused.paused, paused.status) == (False, "pending")


def test_the_admin_is_closed_to_ordinary_users(user):
    client = Client()
    client.force_login(user)
    response = client.get("/admin/monitors/monitor/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def monitor_form(owner, **changes) -> dict:
    return {
        "owner": owner.pk, "name": "site", "url": "http://example.com/", "interval": 60, "timeout": 5,
        "retries": 1, "method": "GET", "headers": "{}", "body": "", "expected_status": "200-399",
        "keyword": "", "follow_redirects": "on", **changes,
    }


def test_a_monitor_added_in_the_admin_is_validated_like_one_from_the_api(admin_client, user):
    response = admin_client.post("/admin/monitors/monitor/add/", monitor_form(user, timeout=60))
    # The form comes back with the error, and nothing is stored.
    assert response.status_code == 200 and b"below the interval" in response.content
    assert not user.monitors.exists()
    response = admin_client.post("/admin/monitors/monitor/add/", monitor_form(user))
    assert response.status_code == 302 and user.monitors.get().status == "pending"


def test_ticking_paused_in_the_admin_form_pauses_and_unticking_resumes(admin_client, data):
    monitor, _ = data
    monitor.status = "down"
    monitor.save()
    url = f"/admin/monitors/monitor/{monitor.pk}/change/"
    admin_client.post(url, monitor_form(monitor.owner, name=monitor.name, paused="on"))
    monitor.refresh_from_db()
    assert (monitor.paused, monitor.status) == (True, "paused")
    admin_client.post(url, monitor_form(monitor.owner, name=monitor.name))
    monitor.refresh_from_db()
    assert (monitor.paused, monitor.status) == (False, "pending")
