"""Verdicts from several regions: quorum, regional outages, impaired nodes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone as dj_timezone

from monitors import ingest, state
from monitors.models import Incident
from notifications.models import Channel, Notification
from tests.factories import MonitorFactory, RegionFactory

pytestmark = pytest.mark.django_db

REGIONS = ("eu-west", "us-east", "ap-south")


@pytest.fixture
def regions():
    now = dj_timezone.now()
    return [RegionFactory(name=name, last_seen_at=now) for name in REGIONS]


@pytest.fixture
def monitor(user, regions):
    monitor = MonitorFactory(owner=user, retries=0, interval=60, timeout=5)
    monitor.regions.set(regions)
    monitor.channels.add(Channel.objects.create(owner=user, name="mail", kind="email", target="ops@example.com"))
    return monitor


def report(monitor, region: str, slot: datetime, ok: bool, impaired: bool = False, error: str = "HTTP 503"):
    ingest.ingest_results(region, f"node@{region}", [{
        "monitor": monitor.pk, "slot": slot.isoformat(), "started_at": (slot + timedelta(seconds=1)).isoformat(),
        "ok": ok, "latency_ms": 20.0, "status_code": 200 if ok else 503, "error_kind": "ok" if ok else "status",
        "error": "" if ok else error, "impaired": impaired,
    }])
    monitor.refresh_from_db()


_clock = {"now": dj_timezone.now()}


@pytest.fixture(autouse=True)
def one_clock_reading_per_test():
    # Every region must report the same slot(1): read from the clock per
    # call, two reports on either side of a second would be two slots.
    _clock["now"] = dj_timezone.now().replace(microsecond=0)


def slot(n: int = 0) -> datetime:
    return _clock["now"] + timedelta(minutes=n)


def test_the_verdict_waits_until_every_chosen_region_reported_the_slot(monitor):
    report(monitor, "eu-west", slot(), ok=True)
    report(monitor, "us-east", slot(), ok=True)
    assert monitor.status == "pending" and monitor.verdict_due_at is not None
    report(monitor, "ap-south", slot(), ok=True)
    assert monitor.status == "up" and monitor.verdict_due_at is None


def test_a_failure_in_fewer_regions_than_the_quorum_is_degraded_naming_the_region_and_alerts_nobody(monitor):
    for region in REGIONS:
        report(monitor, region, slot(), ok=True)
    for region in REGIONS:
        report(monitor, region, slot(1), ok=region != "ap-south", error="connection refused")
    assert monitor.status == "degraded"
    change = monitor.status_changes.order_by("-at").first()
    assert "ap-south" in change.cause and "connection refused" in change.cause
    assert not Notification.objects.filter(event="down").exists()
    assert Incident.objects.count() == 0


def test_a_failure_seen_by_a_majority_is_down_and_the_incident_names_each_regions_error(monitor):
    for region in REGIONS:
        report(monitor, region, slot(), ok=True)
    report(monitor, "eu-west", slot(1), ok=False, error="HTTP 503")
    report(monitor, "us-east", slot(1), ok=False, error="timed out")
    report(monitor, "ap-south", slot(1), ok=True)
    assert monitor.status == "down"
    incident = Incident.objects.get()
    assert incident.regions == ["eu-west", "us-east"]
    assert incident.region_errors == {"eu-west": "HTTP 503", "us-east": "timed out"}
    assert Notification.objects.filter(event="down").count() == 1


def test_a_quorum_of_one_makes_any_failing_region_enough(monitor):
    monitor.quorum = 1
    monitor.save()
    for region in REGIONS:
        report(monitor, region, slot(), ok=region != "us-east")
    assert monitor.status == "down"


def test_failures_from_an_impaired_node_do_not_count(monitor):
    for region in REGIONS:
        report(monitor, region, slot(), ok=True)
    # Two regions "fail", but both from nodes whose own canary is failing.
    report(monitor, "eu-west", slot(1), ok=False, impaired=True)
    report(monitor, "us-east", slot(1), ok=False, impaired=True)
    report(monitor, "ap-south", slot(1), ok=True)
    assert monitor.status == "up"
    assert monitor.results.filter(impaired=True).count() == 2  # stored all the same


def test_a_region_that_never_reports_is_decided_without_it_after_the_deadline(monitor):
    for region in REGIONS:
        report(monitor, region, slot(), ok=True)
    report(monitor, "eu-west", slot(1), ok=False)
    report(monitor, "us-east", slot(1), ok=False)
    # Majority of the three is two: this is already down without ap-south? No:
    # the slot still waits for ap-south until its deadline.
    assert monitor.status == "up" and monitor.verdict_due_at is not None
    assert state.decide_overdue_verdicts(now=monitor.verdict_due_at - timedelta(seconds=1)) == 0
    assert state.decide_overdue_verdicts(now=monitor.verdict_due_at + timedelta(seconds=1)) == 1
    monitor.refresh_from_db()
    assert monitor.status == "down" and monitor.verdict_due_at is None


def test_a_single_region_monitor_is_judged_on_each_result_at_once(user):
    RegionFactory(name="local", last_seen_at=dj_timezone.now())
    monitor = MonitorFactory(owner=user, retries=0)
    report(monitor, "local", slot(), ok=True)
    assert monitor.status == "up"
    report(monitor, "local", slot(1), ok=False)
    assert monitor.status == "down" and Incident.objects.get().regions == ["local"]


def test_a_chosen_region_without_a_live_node_is_shown_as_unserved(monitor, regions):
    regions[2].last_seen_at = dj_timezone.now() - timedelta(hours=1)
    regions[2].save()
    from workers.models import Region

    live = set(Region.objects.live().values_list("name", flat=True))
    assert monitor.unserved_regions(live) == ["ap-south"]
