"""ICMP across the fleet's links (issue 15): a namespace's address answers
echo requests while its link is up, and an ICMP monitor of it goes down
when the link is set down and up again when it is restored."""

from __future__ import annotations

import pytest

from monitors.models import CheckResult, Monitor
from tests.factories import UserFactory
from tests.support.processes import wait_for

pytestmark = pytest.mark.fleet


def status_of(monitor: Monitor) -> str:
    return Monitor.objects.values_list("status", flat=True).get(pk=monitor.pk)


def test_an_icmp_monitor_of_a_namespace_goes_down_when_its_link_is_down_and_up_when_it_is_back(fleet):
    # Nothing runs in `far`: its address is only the target. The node that
    # pings it runs on the host, the one place every namespace is reachable from.
    far = fleet.node_host("far")
    fleet.start_central()
    fleet.start_node_on_host("pinger", "local")
    fleet.wait_for_heartbeat("pinger")
    monitor = Monitor.objects.create(owner=UserFactory(username="ops"), name="far", url=f"icmp://{far.ns_ip}",
                                     interval=2, timeout=1.5, retries=0)
    fleet.start_beat()

    wait_for(lambda: status_of(monitor) == "up", timeout=45, message="the namespace answering pings")
    assert CheckResult.objects.filter(monitor=monitor, ok=True, latency_ms__gt=0).exists()

    # Its cable is pulled: no echo reply comes back, and the monitor is down.
    far.link_down()
    wait_for(lambda: status_of(monitor) == "down", timeout=20, message="the monitor down with the link")
    failed = CheckResult.objects.filter(monitor=monitor, ok=False).order_by("-scheduled_at").first()
    assert far.ns_ip in failed.error, failed.error

    # The cable is back: it answers again, and the monitor is up.
    far.link_up()
    wait_for(lambda: status_of(monitor) == "up", timeout=30, message="the monitor up with the link")
