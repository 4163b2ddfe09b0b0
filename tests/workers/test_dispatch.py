from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from monitors.models import CheckResult, Monitor
from tests.factories import MonitorFactory, RegionFactory
from workers import dispatch


@pytest.fixture
def live_region(db):
    return RegionFactory(name="local", last_seen_at=timezone.now())


def collect(now=None, tick=None) -> list[tuple[str, list[dict]]]:
    sent = []
    dispatch.dispatch_due(lambda queue, batch, expires: sent.append((queue, batch)), now=now, tick=tick)
    return sent


@pytest.mark.django_db
def test_a_due_monitor_is_sent_once_and_its_next_slot_is_one_interval_later(live_region):
    slot = timezone.now().replace(microsecond=0) - timedelta(seconds=2)
    monitor = MonitorFactory(interval=30, next_check_at=slot)
    sent = collect()
    assert [(q, [c["monitor"] for c in b]) for q, b in sent] == [("probe.local", [monitor.pk])]
    assert sent[0][1][0]["slot"] == slot.isoformat()
    monitor.refresh_from_db()
    # On the monitor's own grid, not "now + interval": no drift.
    assert monitor.next_check_at == slot + timedelta(seconds=30)
    assert collect() == []


@pytest.mark.django_db
def test_after_downtime_a_monitor_catches_up_the_window_and_records_the_older_slots_missed_in_one_row(
    live_region, settings,
):
    settings.LOOPR_DISPATCH_CATCH_UP = 120
    now = timezone.now().replace(microsecond=0)
    down_since = now - timedelta(hours=2, seconds=10)
    monitor = MonitorFactory(interval=60, next_check_at=down_since)
    # No tick for two hours: the dispatcher was down.
    sent = collect(now=now, tick=dispatch.Tick(last_tick=None))
    # The slots of the last two minutes are checked, late; not a burst of 120.
    assert [c["slot"] for _, b in sent for c in b] == [(now - timedelta(seconds=s)).isoformat() for s in (70, 10)]
    monitor.refresh_from_db()
    assert monitor.next_check_at == now + timedelta(seconds=50)
    # The 118 before them: one missed record, for the monitor's region.
    missed = CheckResult.objects.get(monitor=monitor)
    assert (missed.error_kind, missed.missed_reason, missed.ok, missed.region_id) == (
        "missed", "dispatcher_down", None, live_region.pk)
    assert (missed.scheduled_at, missed.missed_until) == (down_since, now - timedelta(seconds=130))


@pytest.mark.django_db
def test_slots_a_running_dispatcher_could_not_reach_in_time_are_recorded_as_overload(live_region, settings):
    settings.LOOPR_DISPATCH_CATCH_UP = 30
    now = timezone.now().replace(microsecond=0)
    monitor = MonitorFactory(interval=10, timeout=5, next_check_at=now - timedelta(seconds=65))
    # Ticks ran a second ago, with a live region: the dispatcher is behind.
    collect(now=now, tick=dispatch.Tick(last_tick=now.timestamp() - 1, last_served=now.timestamp() - 1))
    missed = CheckResult.objects.get(monitor=monitor)
    assert (missed.missed_reason, missed.scheduled_at, missed.missed_until) == (
        "overload", now - timedelta(seconds=65), now - timedelta(seconds=35))


@pytest.mark.django_db
def test_slots_skipped_while_no_region_was_live_are_recorded_as_no_region(live_region, settings):
    settings.LOOPR_DISPATCH_CATCH_UP = 30
    now = timezone.now().replace(microsecond=0)
    monitor = MonitorFactory(interval=10, timeout=5, next_check_at=now - timedelta(minutes=10))
    # Ticks ran all along, but the last one that found a live region was long ago.
    collect(now=now, tick=dispatch.Tick(last_tick=now.timestamp() - 1, last_served=now.timestamp() - 600))
    assert CheckResult.objects.get(monitor=monitor).missed_reason == "no_region"


@pytest.mark.django_db
def test_a_global_budget_limits_the_late_slots_one_tick_sends(live_region, settings):
    settings.LOOPR_DISPATCH_CATCH_UP_BUDGET = 10
    now = timezone.now().replace(microsecond=0)
    MonitorFactory.create_batch(20, interval=1, timeout=0.5, next_check_at=now - timedelta(seconds=20))
    sent = [c for _, b in collect(now=now) for c in b]
    # Each monitor's first slot, plus ten more in all (not two more each).
    assert len(sent) == 20 + 10
    # The backlog is still there, for the next ticks.
    assert Monitor.objects.filter(next_check_at__lte=now).count() == 20


@pytest.mark.django_db
def test_paused_and_future_monitors_are_not_sent(live_region):
    MonitorFactory(paused=True, next_check_at=timezone.now() - timedelta(seconds=5))
    MonitorFactory(next_check_at=timezone.now() + timedelta(seconds=30))
    assert collect() == []


@pytest.mark.django_db
def test_checks_travel_in_batches_of_the_configured_size(live_region, settings):
    settings.LOOPR_BATCH_SIZE = 40
    MonitorFactory.create_batch(100, next_check_at=timezone.now() - timedelta(seconds=1))
    assert [len(b) for _, b in collect()] == [40, 40, 20]


@pytest.mark.django_db
def test_a_monitor_goes_to_each_of_its_chosen_live_regions_and_to_every_live_region_when_it_chose_none():
    now = timezone.now()
    eu = RegionFactory(name="eu-west", last_seen_at=now)
    RegionFactory(name="us-east", last_seen_at=now)
    RegionFactory(name="ap-south", last_seen_at=now - timedelta(hours=1))  # no live worker
    chosen = MonitorFactory(next_check_at=now)
    chosen.regions.set([eu])
    anywhere = MonitorFactory(next_check_at=now)
    routed = {}
    for queue, batch in collect():
        routed.setdefault(queue, []).extend(c["monitor"] for c in batch)
    assert routed == {"probe.eu-west": [chosen.pk, anywhere.pk], "probe.us-east": [anywhere.pk]}


@pytest.mark.django_db
def test_the_payload_carries_everything_a_probe_needs_and_nothing_else(live_region):
    MonitorFactory(url="https://example.test/x", method="POST", headers={"X-A": "1"}, body="{}",
                   keyword="ok", expected_status="200,204", follow_redirects=False, next_check_at=timezone.now())
    check = collect()[0][1][0]
    assert set(check) == {"monitor", "slot", "interval", "url", "timeout", "method", "headers", "body",
                          "expected_status", "keyword", "follow_redirects", "kind", "assertions", "tls_verify"}
    assert check["headers"] == {"X-A": "1"} and check["follow_redirects"] is False


@pytest.mark.django_db
def test_a_failed_send_leaves_the_monitors_due(live_region):
    monitor = MonitorFactory(next_check_at=timezone.now() - timedelta(seconds=1))
    before = monitor.next_check_at

    def broken(queue, batch, expires):
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        dispatch.dispatch_due(broken)
    monitor.refresh_from_db()
    assert monitor.next_check_at == before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_ticks_never_claim_the_same_monitor_and_the_second_does_not_wait():
    RegionFactory(name="local", last_seen_at=timezone.now())
    MonitorFactory.create_batch(1500, interval=3600, next_check_at=timezone.now() - timedelta(seconds=1))
    claimed: dict[str, list[int]] = {}
    first_holds_its_claim, second_done = threading.Event(), threading.Event()
    second_took = []

    def first() -> None:
        try:
            with transaction.atomic():
                claimed["first"] = [c["monitor"] for c in dispatch.claim_due_checks(timezone.now(), 1000).checks]
                first_holds_its_claim.set()
                second_done.wait(20)  # keep the row locks while the second tick runs
        finally:
            connections.close_all()

    def second() -> None:
        try:
            first_holds_its_claim.wait(20)
            started = time.monotonic()
            with transaction.atomic():
                claimed["second"] = [c["monitor"] for c in dispatch.claim_due_checks(timezone.now(), 1000).checks]
            second_took.append(time.monotonic() - started)
            second_done.set()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The second tick skipped the locked rows instead of waiting for them...
    assert second_took and second_took[0] < 5
    # ...and took only the rest: every monitor claimed exactly once.
    assert len(claimed["first"]) == 1000 and len(claimed["second"]) == 500
    assert not set(claimed["first"]) & set(claimed["second"])
    assert Monitor.objects.filter(next_check_at__lte=timezone.now()).count() == 0


@pytest.mark.django_db
def test_a_monitor_due_within_the_lookahead_is_sent_early_with_its_own_slot(live_region, settings):
    settings.LOOPR_DISPATCH_LOOKAHEAD = 1.5
    now = timezone.now()
    monitor = MonitorFactory(interval=30, next_check_at=now + timedelta(seconds=1))
    sent = collect(now=now)
    # Sent ahead of time, but carrying the slot it is due at: the probe node holds it until then.
    assert sent[0][1][0]["slot"] == (now + timedelta(seconds=1)).isoformat()
    monitor.refresh_from_db()
    assert monitor.next_check_at == now + timedelta(seconds=31)


@pytest.mark.django_db
def test_a_check_due_before_its_region_s_first_heartbeat_waits_for_it_instead_of_being_skipped():
    # A fresh start: beat's first ticks come before the probe node's first heartbeat.
    region = RegionFactory(name="local", last_seen_at=None)
    slot = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    monitor = MonitorFactory(interval=30, next_check_at=slot)
    assert collect() == []
    monitor.refresh_from_db()
    assert monitor.next_check_at == slot, "the slot is kept, not skipped"

    # The node reports: the very same slot goes out, once.
    region.last_seen_at = timezone.now()
    region.save()
    sent = collect()
    assert [(q, [c["monitor"] for c in b]) for q, b in sent] == [("probe.local", [monitor.pk])]
    assert sent[0][1][0]["slot"] == slot.isoformat()
    assert collect() == []


@pytest.mark.django_db
def test_a_check_whose_regions_stayed_silent_for_a_whole_interval_is_given_up_and_the_next_slot_waits(
    settings,
):
    settings.LOOPR_HEARTBEAT_INTERVAL = 10
    now = timezone.now().replace(microsecond=0)
    RegionFactory(name="local", last_seen_at=now)
    silent = RegionFactory(name="ap-south", last_seen_at=now - timedelta(hours=1))
    monitor = MonitorFactory(interval=20, next_check_at=now - timedelta(seconds=25))
    monitor.regions.set([silent])
    assert collect(now=now) == []
    monitor.refresh_from_db()
    # A region silent that long is down, not starting: the stale slot is
    # recorded as missed there; the newer one, 5 s old, is held for the region's return.
    assert monitor.next_check_at == now - timedelta(seconds=5)
    missed = CheckResult.objects.get(monitor=monitor)
    assert (missed.region, missed.scheduled_at, missed.missed_reason, missed.ok) == (
        silent, now - timedelta(seconds=25), "no_region", None)


@pytest.mark.django_db
def test_with_no_live_region_at_all_a_tick_claims_nothing_and_every_slot_stays_due(django_assert_max_num_queries):
    RegionFactory(name="local", last_seen_at=None)
    slot = timezone.now().replace(microsecond=0) - timedelta(seconds=3)
    monitors = MonitorFactory.create_batch(50, interval=1, timeout=0.5, next_check_at=slot)
    # One look at the regions, and nothing claimed and given back.
    with django_assert_max_num_queries(1):
        assert collect() == []
    assert {m.next_check_at for m in Monitor.objects.filter(pk__in=[m.pk for m in monitors])} == {slot}


@pytest.mark.django_db
def test_a_tick_that_comes_seconds_late_sends_every_slot_it_missed_late_instead_of_skipping_them(live_region):
    # Ingest held the central worker for 3 s: three 1-s slots went by unclaimed.
    now = timezone.now().replace(microsecond=0)
    monitor = MonitorFactory(interval=1, timeout=0.5, next_check_at=now - timedelta(seconds=3))
    sent = []
    for tick in range(4):
        sent += [c["slot"] for _, batch in collect(now=now + timedelta(seconds=tick)) for c in batch]
    # Every slot, in order, none twice; a few per tick, not all at once.
    lookahead = dispatch.settings.LOOPR_DISPATCH_LOOKAHEAD
    expected = [now - timedelta(seconds=3) + timedelta(seconds=k) for k in range(int(3 + 3 + lookahead) + 1)]
    assert sent == [slot.isoformat() for slot in expected]
    monitor.refresh_from_db()
    assert monitor.next_check_at == expected[-1] + timedelta(seconds=1)


@pytest.mark.django_db
def test_catching_up_takes_a_few_slots_of_a_monitor_per_tick_not_the_whole_backlog_at_once(live_region):
    now = timezone.now().replace(microsecond=0)
    MonitorFactory(interval=1, timeout=0.5, next_check_at=now - timedelta(seconds=20))
    assert sum(len(b) for _, b in collect(now=now)) == dispatch.CATCH_UP_BURST


@pytest.mark.django_db
def test_a_heartbeat_is_never_sent_to_a_probe_node_and_assertions_travel_as_data(live_region):
    MonitorFactory(kind="heartbeat", url="", next_check_at=timezone.now() - timedelta(seconds=5))
    checked = MonitorFactory(url="https://example.test/", next_check_at=timezone.now(),
                             assertions=[{"source": "status", "op": "eq", "value": 200}])

    sent = [check for _queue, batch in collect() for check in batch]

    # Heartbeats are pinged, not probed: only the HTTP monitor goes out.
    assert [c["monitor"] for c in sent] == [checked.pk]
    assert sent[0]["kind"] == "http"
    assert sent[0]["assertions"] == [{"source": "status", "op": "eq", "value": 200}]
