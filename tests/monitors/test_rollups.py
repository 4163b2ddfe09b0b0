"""Rollups agree with the raw results they sum: exactly once, late results
in their bucket, outages, maintenance, gaps and missed slots per the
definitions, and latency percentiles within the histogram's error."""

from __future__ import annotations

import math
from collections import Counter
import random
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from monitors import ingest, rollups
from monitors.choices import Resolution
from monitors.models import CheckResult, Incident, Rollup
from tests.factories import MonitorFactory, RegionFactory
from tests.monitors.test_ingest import result

pytestmark = pytest.mark.django_db


@pytest.fixture
def hour():
    """The start of a closed hour, five hours ago."""
    return rollups.floor_to(timezone.now(), rollups.HOUR) - timedelta(hours=5)


def minutes(start, count, **extra):
    return [start + timedelta(minutes=i) for i in range(count)]


def feed(monitor, slots, region="local", **extra):
    ingest.ingest_results(region, "n@h", [result(monitor, slot, **extra) for slot in slots])


def hour_rollup(monitor, hour, region=None) -> Rollup:
    return Rollup.objects.get(monitor=monitor, resolution=Resolution.HOUR, start=hour,
                              region__name=region) if region else Rollup.objects.get(
        monitor=monitor, resolution=Resolution.HOUR, start=hour, region__isnull=True)


def test_a_redelivered_batch_is_counted_once(hour):
    monitor = MonitorFactory(interval=60)
    batch = [result(monitor, slot) for slot in minutes(hour, 60)]
    ingest.ingest_results("local", "n@h", batch)
    rollups.roll_up()
    ingest.ingest_results("local", "n@h", batch)  # delivered again, after the hour was rolled up
    rollups.roll_up()
    rollups.roll_up()
    assert hour_rollup(monitor, hour).checks == 60 == CheckResult.objects.count()
    assert hour_rollup(monitor, hour, "local").checks == 60


def test_a_late_regions_results_land_in_the_bucket_of_their_slot(hour):
    hour -= timedelta(days=1)  # in a day that is over, so that its day bucket is summed too
    monitor = MonitorFactory(interval=60)
    feed(monitor, minutes(hour, 60), region="eu")
    rollups.roll_up()
    assert hour_rollup(monitor, hour).checks == 60
    feed(monitor, minutes(hour, 60)[:10], region="us", ok=False)  # an hour late
    rollups.roll_up()
    late = hour_rollup(monitor, hour, "us")
    assert (late.checks, late.failed_checks) == (10, 10)
    assert (hour_rollup(monitor, hour).checks, hour_rollup(monitor, hour).failed_checks) == (70, 10)
    day = Rollup.objects.get(monitor=monitor, resolution=Resolution.DAY, start=rollups.floor_to(hour, rollups.DAY),
                             region__isnull=True)
    assert (day.checks, day.failed_checks) == (70, 10)


def test_an_outage_is_downtime_from_its_first_failed_check_to_its_recovery(hour):
    monitor = MonitorFactory(interval=60, retries=0)
    slots = minutes(hour, 60)
    feed(monitor, slots[:20])
    feed(monitor, slots[20:30], ok=False)
    feed(monitor, slots[30:])
    incident = Incident.objects.get()
    assert incident.resolved_at is not None
    rollups.roll_up()
    stats = rollups.window([monitor.pk], hour, hour + rollups.HOUR)[(monitor.pk, None)]
    assert stats.down_seconds == 600 == pytest.approx((incident.resolved_at - incident.started_at).total_seconds(),
                                                      abs=1)
    assert stats.covered_seconds == 3600
    assert stats.uptime_percent == 83.333
    assert (stats.checks, stats.failed_checks) == (60, 10)


def test_maintenance_is_not_downtime_and_not_covered(hour):
    monitor = MonitorFactory(interval=60, retries=0)
    slots = minutes(hour, 60)
    feed(monitor, slots[:30])
    monitor.in_maintenance = True
    monitor.save()
    feed(monitor, slots[30:], ok=False)
    rollups.roll_up()
    rollup = hour_rollup(monitor, hour)
    assert (rollup.maintenance_checks, rollup.failed_checks) == (30, 30)
    assert rollup.covered_seconds == 1800 and rollup.down_seconds == 0
    assert rollups.Stats.of(rollup).uptime_percent == 100.0


def test_a_gap_with_no_data_is_neither_up_nor_down(hour):
    monitor = MonitorFactory(interval=60)
    feed(monitor, minutes(hour, 60)[:15])  # then the monitor itself stopped for 45 minutes
    rollups.roll_up()
    stats = rollups.window([monitor.pk], hour, hour + rollups.HOUR)[(monitor.pk, None)]
    assert stats.covered_seconds == 900 and stats.uptime_percent == 100.0


def test_missed_slots_are_no_data_not_failed_checks(hour):
    monitor = MonitorFactory(interval=60)
    region = RegionFactory(name="local")
    feed(monitor, minutes(hour, 30))
    for slot in minutes(hour + timedelta(minutes=30), 30):
        CheckResult.objects.create(monitor=monitor, region=region, scheduled_at=slot, checked_at=slot, ok=None,
                                   error_kind="missed", missed_reason="dispatcher_down")
    rollups.roll_up()
    rollup = hour_rollup(monitor, hour)
    assert (rollup.checks, rollup.failed_checks, rollup.missed_checks) == (30, 0, 30)
    assert rollup.covered_seconds == 1800 and rollup.down_seconds == 0


def test_no_data_at_all_has_no_uptime_rather_than_100(hour):
    monitor = MonitorFactory()
    rollups.roll_up()
    assert rollups.window([monitor.pk], hour, hour + rollups.HOUR).get((monitor.pk, None)) is None
    assert rollups.Stats().uptime_percent is None


def test_percentiles_of_a_known_distribution_are_within_the_histograms_error(hour):
    monitor = MonitorFactory(interval=60)
    rng = random.Random(12)
    latencies = [rng.lognormvariate(4.5, 0.8) for _ in range(60 * 24)]
    slots = [hour - timedelta(hours=23) + timedelta(minutes=i) for i in range(len(latencies))]
    ingest.ingest_results("local", "n@h", [result(monitor, slot, latency_ms=latency)
                                           for slot, latency in zip(slots, latencies)])
    rollups.roll_up()
    stats = rollups.window([monitor.pk], slots[0], slots[-1] + timedelta(minutes=1))[(monitor.pk, None)]
    ordered = sorted(latencies)
    for q, key in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")]:
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        assert abs(stats.latency()[key] - exact) / exact <= rollups.MAX_PERCENTILE_ERROR + 1e-3, key
    assert stats.latency()["avg"] == pytest.approx(sum(latencies) / len(latencies), abs=1e-3)
    assert stats.latency()["max"] == pytest.approx(max(latencies))


def test_merged_histograms_give_the_percentiles_of_the_union(hour):
    a, b = rollups.Stats(), rollups.Stats()
    for value in range(1, 101):
        a.note_latency(value)
        b.note_latency(value * 10)
    both = rollups.Stats()
    both.add(a)
    both.add(b)
    assert abs(both.percentile(0.75) - 500) / 500 <= rollups.MAX_PERCENTILE_ERROR


def test_figures_from_rollups_equal_figures_from_raw_results_on_bucket_boundaries(hour):
    monitor = MonitorFactory(interval=60, retries=0)
    start = hour - timedelta(hours=30)
    slots = [start + timedelta(minutes=i) for i in range(60 * 34)]
    rng = random.Random(3)
    batch = [result(monitor, slot, ok=rng.random() > 0.05, latency_ms=rng.uniform(10, 500)) for slot in slots]
    ingest.ingest_results("local", "n@h", batch)
    since, until = start + timedelta(hours=2), hour + timedelta(hours=3)
    raw = rollups.sum_raw([monitor.pk], since, until, lambda slot: since)[(monitor.pk, None, since)]
    rollups.roll_up()
    assert Rollup.objects.filter(resolution=Resolution.DAY).exists()
    rolled = rollups.window([monitor.pk], since, until)[(monitor.pk, None)]
    assert rolled.checks == CheckResult.objects.filter(scheduled_at__gte=since, scheduled_at__lt=until).count()
    assert (rolled.checks, rolled.failed_checks, rolled.down_seconds, rolled.covered_seconds) == (
        raw.checks, raw.failed_checks, raw.down_seconds, raw.covered_seconds)
    assert rolled.histogram == raw.histogram and rolled.latency() == raw.latency()
    # A minute series over the range adds up to the same figures.
    minutes_ = rollups.series(monitor.pk, Resolution.MINUTE, since, until)
    assert sum(s.down_seconds for (r, _), s in minutes_.items() if r is None) == rolled.down_seconds
    assert sum(s.checks for (r, _), s in minutes_.items() if r is None) == rolled.checks


def test_the_command_builds_rollups_from_the_results_an_upgrade_already_has(hour):
    monitor = MonitorFactory(interval=60)
    feed(monitor, [hour - timedelta(days=3) + timedelta(minutes=i) for i in range(120)])
    assert not Rollup.objects.exists()
    call_command("roll_up_results", stdout=open("/dev/null", "w"))
    day = rollups.floor_to(hour - timedelta(days=3), rollups.DAY)
    rolled = sum(r.checks for r in Rollup.objects.filter(monitor=monitor, resolution=Resolution.HOUR,
                                                          region__isnull=True))
    assert rolled == 120
    assert Rollup.objects.filter(monitor=monitor, resolution=Resolution.DAY, start__gte=day).exists()
    assert rollups.rolled_up_to() == rollups.floor_to(timezone.now() - rollups.CLOSE_MARGIN, rollups.HOUR)


def test_rollups_past_their_retention_are_pruned(settings, hour):
    settings.LOOPR_ROLLUP_HOUR_DAYS = 2
    monitor = MonitorFactory(interval=60)
    feed(monitor, minutes(hour - timedelta(days=3), 5) + minutes(hour, 5))
    rollups.roll_up()
    assert rollups.prune_rollups() == 2  # the old hour: its verdict and its region
    assert not Rollup.objects.filter(resolution=Resolution.HOUR, start__lt=hour - timedelta(days=2)).exists()


def test_a_histogram_packs_into_a_few_bytes_and_back_unchanged():
    rng = random.Random(5)
    for _ in range(200):
        histogram = Counter({rng.randint(0, 255): rng.choice([1, 5, 127, 128, 300, 70_000])
                             for _ in range(rng.randint(0, 40))})
        assert rollups.unpack_histogram(rollups.pack_histogram(histogram)) == histogram
    hour = Counter(rollups.bucket_of(ms) for ms in range(20, 900))  # 880 checks, 20 ms to 900 ms
    assert len(rollups.pack_histogram(hour)) < 100


def test_the_back_fill_is_not_summed_a_second_time_as_late_results(hour):
    monitor = MonitorFactory(interval=60)
    feed(monitor, minutes(hour - timedelta(days=2), 180))
    rollups.roll_up()  # the back-fill
    assert rollups.roll_up_late_results() == 0
    feed(monitor, [hour - timedelta(days=2, minutes=1)])  # one late result, before the first slot
    assert rollups.roll_up_late_results() == 1
