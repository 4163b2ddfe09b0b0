"""Node enrolment, heartbeats, node states and rejected reports."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitors.models import CheckResult
from tests.factories import MonitorFactory
from workers import reports, services
from workers.tasks import ingest_results, record_heartbeat
from workers.models import NodeToken, Region, Rejection, WorkerNode

pytestmark = pytest.mark.django_db


def beat(name="n1@h", region="eu-west", token="", **report):
    return record_heartbeat(reports.sign("heartbeat", region, name, {"version": "0.1.0", **report}, token))


def test_create_node_token_prints_the_token_last_and_stores_only_its_hash():
    out = StringIO()
    call_command("create_node_token", "eu-west", stdout=out, stderr=StringIO())
    token = out.getvalue().strip().splitlines()[-1]
    assert token.startswith("lnt_")
    stored = NodeToken.objects.get()
    assert stored.key_hash == NodeToken.hash(token) and token not in (stored.key_hash, stored.hint)
    assert stored.region.name == "eu-west"  # the region is created by its first enrolment


def test_a_heartbeat_with_a_valid_token_registers_the_node_online_and_makes_its_region_live():
    _, token = NodeToken.issue("eu-west")
    assert beat(token=token, checks_done=10, failures=2, mean_lag_ms=3.5, concurrency=2)
    node = WorkerNode.objects.get()
    assert (node.state, node.region.name, node.checks_done, node.failures, node.mean_lag_ms) == (
        "online", "eu-west", 10, 2, 3.5)
    assert Region.objects.get(name="eu-west").is_live


@pytest.mark.parametrize("token_kind", ["none", "unknown", "revoked", "other region"])
def test_a_heartbeat_without_a_valid_token_is_refused_counted_and_makes_nothing_live(token_kind):
    issued, token = NodeToken.issue("us-east" if token_kind == "other region" else "eu-west")
    if token_kind == "revoked":
        issued.revoke()
    token = {"none": "", "unknown": "lnt_nope"}.get(token_kind, token)
    assert not beat(token=token)
    assert not WorkerNode.objects.exists()
    assert not Region.objects.live().exists()
    assert Rejection.objects.get().count == 1


def test_an_impaired_node_says_so_and_a_draining_node_stays_draining():
    _, token = NodeToken.issue("eu-west")
    beat(token=token, impaired=True, canary_error="canary http://x: refused")
    node = WorkerNode.objects.get()
    assert node.state == "impaired" and "refused" in node.canary_error
    node.state = "draining"
    node.save()
    beat(token=token)
    assert WorkerNode.objects.get().state == "draining"


def test_a_node_silent_for_three_heartbeats_is_marked_offline(settings):
    settings.LOOPR_HEARTBEAT_INTERVAL = 10
    _, token = NodeToken.issue("eu-west")
    beat(token=token)
    WorkerNode.objects.update(last_heartbeat_at=timezone.now() - timedelta(seconds=31))
    assert services.mark_offline_nodes() == 1
    assert WorkerNode.objects.get().state == "offline"


def test_revoking_a_token_marks_its_nodes_revoked_and_rejects_their_results():
    issued, token = NodeToken.issue("eu-west")
    beat(token=token)
    monitor = MonitorFactory()
    result = {"monitor": monitor.pk, "slot": timezone.now().isoformat(), "started_at": timezone.now().isoformat(),
              "ok": False, "error_kind": "status", "error": "HTTP 503"}
    issued.revoke()
    assert WorkerNode.objects.get().state == "revoked"
    report = reports.sign("results", "eu-west", "n1@h", [result, result], token)
    assert ingest_results(report) == {"refused": "revoked token"}
    assert CheckResult.objects.count() == 0
    # Counted in reports: the rows of a report that is refused are never read.
    assert Rejection.objects.get(reason="revoked token").count == 1
    assert WorkerNode.objects.get().rejected_results == 1


def test_results_for_a_region_the_token_is_not_for_are_rejected():
    _, token = NodeToken.issue("eu-west")
    monitor = MonitorFactory()
    result = {"monitor": monitor.pk, "slot": timezone.now().isoformat(), "started_at": timezone.now().isoformat(),
              "ok": True}
    assert ingest_results(reports.sign("results", "us-east", "n1@h", [result], token)) == {"refused": "unknown token"}
    assert ingest_results(reports.sign("results", "eu-west", "n1@h", [result], token))["stored"] == 1


def test_the_nodes_api_is_for_staff_only(api, user):
    _, token = NodeToken.issue("eu-west")
    beat(token=token)
    assert api.get("/api/v1/nodes/").status_code == 403
    user.is_staff = True
    user.save()
    listed = api.get("/api/v1/nodes/").json()["results"]
    assert [(n["name"], n["region"], n["state"], n["online"]) for n in listed] == [("n1@h", "eu-west", "online", True)]
    assert api.get("/api/v1/nodes/n1@h/").status_code == 200
    assert api.get("/api/v1/nodes/%00/").status_code == 404


def test_the_admin_shows_nodes_regions_tokens_and_rejections(client, user):
    user.is_staff = user.is_superuser = True
    user.save()
    client.force_login(user)
    _, token = NodeToken.issue("eu-west")
    beat(token=token)
    beat(token="lnt_bad", name="rogue@h")
    for url in ("/admin/workers/workernode/", "/admin/workers/region/", "/admin/workers/nodetoken/",
                "/admin/workers/rejection/", f"/admin/workers/region/{Region.objects.get().pk}/change/",
                "/admin/workers/nodetoken/add/"):
        assert client.get(url).status_code == 200, url
    response = client.post("/admin/workers/nodetoken/add/", {"region": Region.objects.get().pk, "label": "new"})
    assert response.status_code == 302 and NodeToken.objects.count() == 2
