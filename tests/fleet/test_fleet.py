"""The fleet, across real network namespaces: verdicts from several regions,
failover when a node dies or loses its link, impaired and revoked nodes."""

from __future__ import annotations

import time

import pytest
from django.db.models import Count
from django.utils import timezone

from monitors.models import CheckResult, Incident, Monitor
from notifications.models import Channel, Notification
from tests.factories import MonitorFactory, UserFactory
from tests.support.processes import wait_for
from workers.models import NodeToken, Rejection, WorkerNode

pytestmark = pytest.mark.fleet

# A node's batch goes back to its queue this soon after the node died.
FAST_FAILOVER = {"LOOPR_BROKER_VISIBILITY_TIMEOUT": "6", "LOOPR_VERDICT_GRACE": "2"}


def status_of(monitor: Monitor) -> str:
    monitor.refresh_from_db()
    return monitor.status


def node(name: str) -> WorkerNode:
    return WorkerNode.objects.get(name__startswith=f"{name}@")


def no_result_twice() -> bool:
    doubled = (CheckResult.objects.values("monitor", "scheduled_at", "region")
               .annotate(n=Count("id")).filter(n__gt=1))
    return not doubled.exists()


def test_regions_vote_a_regional_outage_is_degraded_without_an_alert_and_a_global_one_is_down_once(fleet):
    eu1, eu2, us1 = fleet.node_host("eu1"), fleet.node_host("eu2"), fleet.node_host("us1")
    target = fleet.target()
    fleet.start_central(**FAST_FAILOVER)
    fleet.start_node(eu1, "eu-west", **FAST_FAILOVER)
    fleet.start_node(eu2, "eu-west", **FAST_FAILOVER)
    fleet.start_node(us1, "us-east", **FAST_FAILOVER)
    for name in ("eu1", "eu2", "us1"):
        fleet.wait_for_heartbeat(name)
    owner = UserFactory(username="ops")
    mail = Channel.objects.create(owner=owner, name="ops", kind="email", target="ops@example.com")
    monitor = MonitorFactory(owner=owner, url=target.url("/"), interval=1, timeout=0.8, retries=1,
                             next_check_at=timezone.now())
    monitor.channels.add(mail)
    fleet.start_beat(**FAST_FAILOVER)

    # Up from everywhere, with results from both regions.
    wait_for(lambda: status_of(monitor) == "up", timeout=45, message="up")
    wait_for(lambda: {"eu-west", "us-east"} <= set(monitor.results.values_list("region__name", flat=True)),
             timeout=30, message="results from both regions")

    # Only us-east cannot reach the target: a regional outage, degraded, naming it.
    us1.block(fleet.address_of(target))
    wait_for(lambda: status_of(monitor) == "degraded", timeout=30, message="degraded")
    change = monitor.status_changes.filter(new="degraded").latest("at")
    assert "us-east" in change.cause and "eu-west" not in change.cause
    time.sleep(3)
    assert status_of(monitor) == "degraded"
    assert not Notification.objects.filter(event="down").exists()
    assert not Incident.objects.exists()

    # Reachable again, then down from everywhere: down, and one down alert.
    us1.unblock(fleet.address_of(target))
    wait_for(lambda: status_of(monitor) == "up", timeout=30, message="up again")
    target.behave(status=503)
    wait_for(lambda: status_of(monitor) == "down", timeout=30, message="down")
    time.sleep(3)
    assert Notification.objects.filter(event="down").count() == 1
    incident = Incident.objects.get()
    assert incident.regions == ["eu-west", "us-east"]
    assert set(incident.region_errors) == {"eu-west", "us-east"}
    # (How the two eu-west nodes share their queue: test_fleet_smoke.py.)
    assert no_result_twice()


def test_a_node_killed_mid_batch_or_cut_off_loses_nothing_and_counts_nothing_twice(fleet):
    eu1, eu2 = fleet.node_host("eu1"), fleet.node_host("eu2")
    target = fleet.target()
    target.behave("/slow", delay=4.0)
    env = {**FAST_FAILOVER, "LOOPR_BATCH_SIZE": "100"}
    fleet.start_central(**env)
    fleet.start_node(eu1, "eu-west", name="doomed", **env)
    fleet.wait_for_heartbeat("doomed")
    owner = UserFactory(username="ops")
    now = timezone.now()
    batch = [MonitorFactory(owner=owner, url=target.url("/slow"), interval=3600, timeout=10, next_check_at=now)
             for _ in range(8)]
    fleet.start_beat(**env)

    # kill -9 in the middle of the batch: the other node of the region serves it.
    wait_for(lambda: target.hit_count("/slow") == 8, timeout=30, message="the batch to start on the doomed node")
    fleet.kill("doomed")
    fleet.start_node(eu2, "eu-west", name="survivor", **env)
    wait_for(lambda: CheckResult.objects.filter(monitor__in=batch).count() == 8, timeout=60,
             message="every check of the batch")
    for monitor in batch:
        results = list(CheckResult.objects.filter(monitor=monitor).values_list("node__name", flat=True))
        assert len(results) == 1 and results[0].startswith("survivor@"), results

    # Cut a node's link: it goes offline, and its region goes on with the other node.
    target.behave("/slow", delay=0)
    fleet.start_node(eu1, "eu-west", name="cutoff", **env)
    fleet.wait_for_heartbeat("cutoff")
    frequent = [MonitorFactory(owner=owner, url=target.url(f"/f{i}"), interval=1, timeout=0.8,
                               next_check_at=timezone.now()) for i in range(4)]
    wait_for(lambda: CheckResult.objects.filter(monitor__in=frequent, node__name__startswith="cutoff@").exists(),
             timeout=30, message="the node to be cut serving its share")
    eu1.link_down()
    cut_at = timezone.now()
    # Three missed heartbeats (1 s each) and the 5 s sweep: offline within ~10 s.
    wait_for(lambda: node("cutoff").state == "offline", timeout=20, message="the cut node offline")
    assert (timezone.now() - cut_at).total_seconds() < 15
    later = timezone.now()
    wait_for(lambda: CheckResult.objects.filter(monitor__in=frequent, scheduled_at__gt=later).count() >= 12,
             timeout=30, message="the region served by the remaining node")
    served_after = set(CheckResult.objects.filter(monitor__in=frequent, scheduled_at__gt=later)
                       .values_list("node__name", flat=True))
    assert all(n.startswith("survivor@") for n in served_after), served_after
    assert no_result_twice()


def test_an_impaired_node_cannot_turn_a_healthy_target_down_and_a_revoked_node_is_refused(fleet):
    eu1, us1, rogue_host = fleet.node_host("eu1"), fleet.node_host("us1"), fleet.node_host("rogue")
    target, canary = fleet.target(), fleet.target()
    # One check per batch: the rogue, competing for eu-west's queue, gets some.
    fleet.start_central(LOOPR_BATCH_SIZE="1", **FAST_FAILOVER)
    fleet.start_node(eu1, "eu-west", **FAST_FAILOVER)
    # us1's own network is broken: it reaches neither its canary nor the target.
    us1.block(fleet.address_of(canary))
    us1.block(fleet.address_of(target))
    fleet.start_node(us1, "us-east", LOOPR_CANARY_URL=canary.url("/"), LOOPR_CANARY_INTERVAL="0.5",
                     **FAST_FAILOVER)
    for name in ("eu1", "us1"):
        fleet.wait_for_heartbeat(name)
    wait_for(lambda: node("us1").state == "impaired", timeout=20, message="us1 impaired")
    assert "canary" in node("us1").canary_error

    # A node whose token was revoked, taking work from eu-west's queue.
    revoked, token = NodeToken.issue("eu-west", label="stolen laptop")
    revoked.revoke()
    fleet.start_node(rogue_host, "eu-west", name="rogue", LOOPR_NODE_TOKEN=token, **FAST_FAILOVER)

    owner = UserFactory(username="ops")
    monitors = [MonitorFactory(owner=owner, url=target.url(f"/m{i}"), interval=1, timeout=0.8, retries=0,
                               next_check_at=timezone.now()) for i in range(4)]
    fleet.start_beat(**FAST_FAILOVER)

    wait_for(lambda: CheckResult.objects.filter(region__name="us-east", impaired=True, ok=False).count() >= 6,
             timeout=45, message="failures from the impaired node")
    # Rejections of a name no node has verified are folded into one row per
    # region and reason (a rogue inventing names cannot grow the table).
    wait_for(lambda: Rejection.objects.filter(region="eu-west", reason="revoked token", count__gt=0).exists(),
             timeout=45, message="the rogue's results refused")
    # The rogue takes a share of eu-west's checks (refused at ingest, and
    # owed until they are sent again after their deadline): a monitor can go
    # several slots without a result of eu1's, and stays pending until one.
    wait_for(lambda: all(CheckResult.objects.filter(monitor=m, region__name="eu-west").exists() for m in monitors),
             timeout=30, message="a result of eu1's for every monitor")
    time.sleep(3)
    # Its failures are stored but did not count: the target is healthy, so up.
    for monitor in monitors:
        assert status_of(monitor) == "up"
        assert not monitor.status_changes.filter(new="down").exists()
    # Nothing from the rogue was stored, and what it sent was counted.
    assert not CheckResult.objects.filter(node__name__startswith="rogue@").exists()
    assert Rejection.objects.get(region="eu-west", reason="heartbeat: revoked token").count >= 1
    assert not WorkerNode.objects.filter(name__startswith="rogue@", state="online").exists()
    assert no_result_twice()
