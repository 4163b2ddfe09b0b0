"""A small fleet on this machine: central services on the host, three probe
nodes in two regions, each in its own network namespace, reaching Redis and
the target only through its own veth."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from monitors.models import CheckResult
from tests.factories import MonitorFactory, UserFactory
from tests.support.processes import wait_for
from workers.models import Region, WorkerNode

pytestmark = pytest.mark.fleet


def last_heartbeat(node: str) -> datetime:
    return WorkerNode.objects.get(name__startswith=f"{node}@").last_heartbeat_at


def nodes_serving(region: str, since: datetime | None = None) -> set[str]:
    results = CheckResult.objects.filter(region__name=region)
    if since is not None:
        results = results.filter(scheduled_at__gte=since)
    return {node.split("@")[0] for node in results.values_list("node__name", flat=True).distinct()}


def slots(monitor, region: str, since: datetime) -> list[datetime]:
    return sorted(CheckResult.objects.filter(monitor=monitor, region__name=region, scheduled_at__gte=since)
                  .values_list("scheduled_at", flat=True))


def test_every_node_of_both_regions_serves_checks_and_a_cut_node_drops_out_while_its_region_goes_on_and_back(fleet):
    eu1, eu2, us1 = fleet.node_host("eu1"), fleet.node_host("eu2"), fleet.node_host("us1")
    target = fleet.target()
    # One check per batch, so that the two eu-west nodes share their region's queue.
    env = {"LOOPR_BATCH_SIZE": "1"}
    fleet.start_central(**env)
    fleet.start_node(eu1, "eu-west")
    fleet.start_node(eu2, "eu-west")
    fleet.start_node(us1, "us-east")
    for node in ("eu1", "eu2", "us1"):
        fleet.wait_for_heartbeat(node)
    owner = UserFactory(username="ops")
    monitors = [MonitorFactory(owner=owner, url=target.url(f"/m{i}"), interval=1, timeout=1,
                               next_check_at=timezone.now()) for i in range(4)]
    fleet.start_beat(**env)

    # Monitors without regions are checked from both live regions, by every node of eu-west.
    wait_for(lambda: nodes_serving("eu-west") == {"eu1", "eu2"} and nodes_serving("us-east") == {"us1"},
             timeout=45, message="results from eu1 and eu2 (eu-west) and us1 (us-east)")
    assert CheckResult.objects.filter(ok=True).exists()
    # Each node talks to Redis from its own namespace, over its own veth.
    peers = {client["addr"].rsplit(":", 1)[0] for client in fleet.redis.client.client_list()}
    assert {eu1.ns_ip, eu2.ns_ip, us1.ns_ip} <= peers, peers
    wait_for(lambda: all(target.hit_count(f"/m{i}") for i in range(4)), timeout=15, message="every monitor checked")

    # eu1's cable is pulled: its heartbeats stop, eu2's go on.
    eu1.link_down()
    cut = timezone.now()
    wait_for(lambda: last_heartbeat("eu2") > cut + timedelta(seconds=4), timeout=20,
             message="eu2 to keep sending heartbeats")
    stopped_at = last_heartbeat("eu1")
    assert stopped_at < cut + timedelta(seconds=1.5), "eu1's heartbeats must stop when its link is down"
    time.sleep(2)
    assert last_heartbeat("eu1") == stopped_at
    assert Region.objects.get(name="eu-west").last_seen_at > cut + timedelta(seconds=4)

    # eu-west is served by eu2 alone, without a gap once eu1's last batches are written off.
    settled = cut + timedelta(seconds=3)
    wait_for(lambda: all(len(slots(m, "eu-west", settled)) >= 4 for m in monitors), timeout=30,
             message="four eu-west slots of every monitor after the cut")
    assert nodes_serving("eu-west", since=settled) == {"eu2"}
    assert nodes_serving("us-east", since=settled) == {"us1"}
    for monitor in monitors:
        seen = slots(monitor, "eu-west", settled)
        gaps = [(b - a).total_seconds() for a, b in zip(seen, seen[1:])]
        # On the 1 s grid; a tick late under load skips a slot, never drifts.
        assert all(gap >= 1 and gap == int(gap) for gap in gaps), f"monitor {monitor.pk}: {gaps}"
        assert gaps.count(1.0) >= len(gaps) / 2, f"monitor {monitor.pk}: {gaps}"

    # The cable is back: eu1's heartbeats resume and it takes checks again
    # (once TCP's retransmission backoff lets its Redis connections through).
    eu1.link_up()
    back = timezone.now()
    wait_for(lambda: last_heartbeat("eu1") > back, timeout=30, message="eu1's heartbeats to resume")
    wait_for(lambda: "eu1" in nodes_serving("eu-west", since=back), timeout=60,
             message="eu1 to take eu-west checks again")

    # Drained (the admin's action): eu2 finishes what it holds and takes
    # nothing new; it keeps its heartbeats and its "draining" state.
    from workers import services

    services.drain(WorkerNode.objects.get(name__startswith="eu2@"))
    drained = timezone.now() + timedelta(seconds=3)
    wait_for(lambda: all(len(slots(m, "eu-west", drained)) >= 3 for m in monitors), timeout=30,
             message="eu-west checks after the drain")
    assert nodes_serving("eu-west", since=drained) == {"eu1"}
    assert WorkerNode.objects.get(name__startswith="eu2@").state == "draining"
    assert last_heartbeat("eu2") > drained

    # Never two results for one (monitor, slot, region).
    doubles = (CheckResult.objects.values("monitor", "scheduled_at", "region")
               .annotate(n=Count("id")).filter(n__gt=1))
    assert list(doubles) == []
