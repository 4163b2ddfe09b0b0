"""GET /monitors/{id}/uptime/ and /series/: their shapes, their agreement
with the raw results, and a 400 naming the parameter for bad input."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitors import ingest, rollups
from monitors.choices import Resolution
from monitors.models import CheckResult, MonitorSummary, Rollup, RollupProgress
from tests.factories import MonitorFactory, RegionFactory
from tests.monitors.test_ingest import result

pytestmark = pytest.mark.django_db

LATENCY_KEYS = {"avg", "min", "max", "p50", "p95", "p99"}


def iso(at) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture
def hour():
    return rollups.floor_to(timezone.now(), rollups.HOUR) - timedelta(hours=4)


@pytest.fixture
def checked(user, hour):
    """A monitor checked every minute from two regions for three hours, the
    first with a ten-minute outage in the first hour; rolled up."""
    monitor = MonitorFactory(owner=user, interval=60, retries=0)
    slots = [hour + timedelta(minutes=i) for i in range(180)]
    ingest.ingest_results("eu", "e@h", [result(monitor, s, latency_ms=100.0) for s in slots])
    ingest.ingest_results("us", "u@h", [result(monitor, s, ok=not 10 <= i < 20, latency_ms=200.0)
                                        for i, s in enumerate(slots)])
    rollups.roll_up()
    return monitor


def test_uptime_answers_every_figure_overall_and_per_region(api, checked, hour):
    response = api.get(f"/api/v1/monitors/{checked.pk}/uptime/?since={iso(hour)}&until={iso(hour + timedelta(hours=3))}")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"monitor", "since", "until", "region", "uptime_percent", "downtime_seconds", "incidents",
                         "checks", "failed_checks", "latency_ms", "regions"}
    assert (body["checks"], body["failed_checks"]) == (360, 10)
    assert body["checks"] == CheckResult.objects.filter(monitor=checked).count()
    # One region of two failing is no majority: degraded, no outage, no downtime.
    assert (body["incidents"], body["downtime_seconds"], body["uptime_percent"]) == (0, 0, 100.0)
    assert set(body["latency_ms"]) == LATENCY_KEYS
    assert set(body["regions"]) == {"eu", "us"}
    assert body["regions"]["eu"]["uptime_percent"] == 100.0
    assert body["regions"]["us"]["uptime_percent"] == pytest.approx(100 * (1 - 10 / 180), abs=0.001)
    assert body["regions"]["us"]["latency_ms"]["p50"] == pytest.approx(200, rel=rollups.MAX_PERCENTILE_ERROR)


def test_uptime_of_one_region_is_that_regions_figures(api, checked, hour):
    body = api.get(f"/api/v1/monitors/{checked.pk}/uptime/?since={iso(hour)}&until={iso(hour + timedelta(hours=3))}"
                   f"&region=us").json()
    assert (body["region"], body["checks"], body["failed_checks"]) == ("us", 180, 10)
    assert body["uptime_percent"] == 94.444  # floored


def test_uptime_windows_end_now_and_default_to_24_hours(api, checked):
    body = api.get(f"/api/v1/monitors/{checked.pk}/uptime/").json()
    assert body["checks"] == 360
    span = timezone.datetime.fromisoformat(body["until"]) - timezone.datetime.fromisoformat(body["since"])
    assert span == timedelta(hours=24)
    assert api.get(f"/api/v1/monitors/{checked.pk}/uptime/?window=1h").json()["checks"] == 0


def test_an_outage_is_downtime_and_an_incident_in_the_range(api, user, hour):
    monitor = MonitorFactory(owner=user, interval=60, retries=0)
    slots = [hour + timedelta(minutes=i) for i in range(120)]
    ingest.ingest_results("eu", "e@h", [result(monitor, s, ok=not 30 <= i < 45) for i, s in enumerate(slots)])
    rollups.roll_up()
    body = api.get(f"/api/v1/monitors/{monitor.pk}/uptime/?since={iso(hour)}&until={iso(slots[-1])}").json()
    assert (body["incidents"], body["downtime_seconds"], body["failed_checks"]) == (1, 900, 15)
    assert body["uptime_percent"] == 87.394  # 1 - 900 / (119 × 60), floored


def test_a_monitor_never_checked_has_no_uptime_rather_than_100(api, user):
    body = api.get(f"/api/v1/monitors/{MonitorFactory(owner=user).pk}/uptime/?window=30d").json()
    assert body["uptime_percent"] is None and body["checks"] == 0
    assert body["latency_ms"] == dict.fromkeys(LATENCY_KEYS)


def test_a_minute_series_lists_every_bucket_oldest_first_with_gaps_as_null(api, checked, hour):
    since, until = hour - timedelta(minutes=5), hour + timedelta(minutes=25)
    body = api.get(f"/api/v1/monitors/{checked.pk}/series/?resolution=minute&since={iso(since)}"
                   f"&until={iso(until)}").json()
    assert body["resolution"] == "minute" and len(body["buckets"]) == 30
    first, later = body["buckets"][0], body["buckets"][5]
    assert first["checks"] == 0 and first["uptime_percent"] is None  # before the first check: no data
    assert later["checks"] == 2 and set(later["latency_ms"]) == LATENCY_KEYS
    assert [b["start"] for b in body["buckets"]] == sorted(b["start"] for b in body["buckets"])
    assert sum(b["failed_checks"] for b in body["buckets"]) == 10


def test_hour_and_day_series_add_up_to_the_raw_results(api, checked, hour):
    for resolution in ("hour", "day"):
        body = api.get(f"/api/v1/monitors/{checked.pk}/series/?resolution={resolution}").json()
        assert sum(b["checks"] for b in body["buckets"]) == 360, resolution
        assert sum(b["failed_checks"] for b in body["buckets"]) == 10, resolution


def test_a_series_comes_as_csv_for_spreadsheets(api, checked, hour):
    query = f"resolution=hour&since={iso(hour)}&until={iso(hour + timedelta(hours=3))}"
    for url in (f"/api/v1/monitors/{checked.pk}/series/?{query}&format=csv",
                f"/api/v1/monitors/{checked.pk}/series.csv?{query}"):
        response = api.get(url)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert [int(r["checks"]) for r in rows] == [120, 120, 120]
        assert rows[0]["latency_p95_ms"] != ""


@pytest.mark.parametrize(
    "endpoint, query, parameter",
    [
        ("uptime", "window=2d", "window"),
        ("uptime", "since=yesterday", "since"),
        ("uptime", "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
        ("uptime", "until=2026-01-01T00:00:00Z", "since"),
        ("uptime", "window=24h&since=2026-01-01T00:00:00Z", "window"),
        ("uptime", "since=2001-01-01T00:00:00Z", "since"),
        ("uptime", "region=mars", "region"),
        ("series", "resolution=second", "resolution"),
        ("series", "resolution=minute&since=2001-01-01T00:00:00Z", "since"),
        ("series", "resolution=hour&until=not-a-time", "until"),
        ("series", "region=mars", "region"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(api, user, endpoint, query, parameter):
    response = api.get(f"/api/v1/monitors/{MonitorFactory(owner=user).pk}/{endpoint}/?{query}")
    assert response.status_code == 400 and parameter in response.json()


def test_a_range_longer_than_minutes_are_kept_is_refused(api, user, settings):
    settings.LOOPR_RESULTS_RETENTION_DAYS = 2
    since = iso(timezone.now() - timedelta(days=3))
    response = api.get(f"/api/v1/monitors/{MonitorFactory(owner=user).pk}/series/?resolution=minute&since={since}")
    assert response.status_code == 400 and "since" in response.json()
    assert api.get(f"/api/v1/monitors/{MonitorFactory(owner=user).pk}/series/?resolution=hour&since={since}"
                   ).status_code == 200


def test_the_monitor_list_shows_uptime_and_p95_in_a_few_queries_for_the_whole_page(
        api, user, checked, hour, django_assert_max_num_queries):
    quiet = MonitorFactory(owner=user, name="quiet")
    body = {m["id"]: m for m in api.get("/api/v1/monitors/").json()["results"]}
    assert body[checked.pk]["uptime_24h"] == 100.0 and body[checked.pk]["uptime_30d"] == 100.0
    assert body[checked.pk]["latency_p95_24h_ms"] == pytest.approx(200, rel=rollups.MAX_PERCENTILE_ERROR)
    assert body[quiet.pk]["uptime_24h"] is None and body[quiet.pk]["latency_p95_24h_ms"] is None
    assert api.get(f"/api/v1/monitors/{checked.pk}/").json()["uptime_24h"] == 100.0
    with django_assert_max_num_queries(30) as few:
        api.get("/api/v1/monitors/")
    for n in range(20):
        MonitorFactory(owner=user, name=f"more{n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        api.get("/api/v1/monitors/")


def test_another_users_monitor_is_a_404(api, other_user):
    theirs = MonitorFactory(owner=other_user)
    RegionFactory(name="eu")
    for endpoint in ("uptime/", "series/", "series.csv"):
        assert api.get(f"/api/v1/monitors/{theirs.pk}/{endpoint}").status_code == 404


@pytest.fixture
def outage(user, hour):
    """A monitor checked every minute from two regions for three hours, both
    failing for ten minutes of the second (an outage: downtime); rolled up."""
    return checked_with_an_outage(user, hour)


def checked_with_an_outage(user, hour):
    monitor = MonitorFactory(owner=user, interval=60, retries=0)
    slots = [hour + timedelta(minutes=i) for i in range(180)]
    for region, latency in (("eu", 100.0), ("us", 300.0)):
        for i, slot in enumerate(slots):
            ingest.ingest_results(region, f"{region}@h", [
                result(monitor, slot, ok=not 70 <= i < 80, latency_ms=latency + i % 7)])
    rollups.roll_up()
    return monitor


def test_the_monitor_lists_figures_from_summary_rows_equal_those_summed_from_rollups_and_raw_results(
        user, outage, hour):
    done = rollups.rolled_up_to()
    now = done + timedelta(minutes=5)  # the hour the last roll-up closed is the current one
    # Raw results since the roll-up are counted too.
    ingest.ingest_results("eu", "eu@h", [result(outage, done + timedelta(minutes=1), ok=False)])
    # The roll-up wrote the monitor's summary row for where it stopped.
    assert MonitorSummary.objects.get(monitor=outage).rolled_up_to == done
    with CaptureQueriesContext(connection) as read:
        fast = rollups.summaries([outage.pk], now=now)[outage.pk]
    assert not any('"monitors_rollup"' in q["sql"] for q in read.captured_queries)
    MonitorSummary.objects.all().delete()
    with CaptureQueriesContext(connection) as read:
        slow = rollups.summaries([outage.pk], now=now)[outage.pk]
    assert any('"monitors_rollup"' in q["sql"] for q in read.captured_queries)
    assert fast == slow
    # And both are what the uptime endpoint sums for the same span (rollups and raw results).
    since, _ = rollups.summary_spans(now)
    verdict = rollups.window([outage.pk], since, now)[(outage.pk, None)]
    assert 0 < verdict.down_seconds and fast.uptime_24h == verdict.uptime_percent < 100
    assert fast.latency_p95_24h_ms == round(verdict.percentile(0.95), 3)
    month = rollups.window([outage.pk], rollups.summary_spans(now)[1], now)[(outage.pk, None)]
    assert fast.uptime_30d == month.uptime_percent
    # The sparkline's hours: 24, the outage's hour below 100 %, hours without data empty.
    assert len(fast.hours) == 24 and fast.hours[-1][0] == rollups.floor_to(now, rollups.HOUR)
    by_start = {start: (average, uptime) for start, average, uptime in fast.hours}
    assert by_start[hour + timedelta(hours=1)][1] < 100 and by_start[hour][1] == 100.0
    assert by_start[hour][0] == pytest.approx(203, abs=1)
    assert by_start[hour - timedelta(hours=1)] == (None, None)


def summed_both_ways(monitor, now):
    """The list's figures from the summary rows (no rollup read), then summed
    from rollups and raw results with the rows gone."""
    with CaptureQueriesContext(connection) as read:
        fast = rollups.summaries([monitor.pk], now=now)[monitor.pk]
    assert not any('"monitors_rollup"' in q["sql"] for q in read.captured_queries)
    MonitorSummary.objects.all().delete()
    slow = rollups.summaries([monitor.pk], now=now)[monitor.pk]
    return fast, slow


def test_after_the_hour_turns_and_before_its_roll_up_the_list_reads_the_summary_rows_next_hour_part(
        user, outage, hour):
    # Rolled up to an hour back (not yet that hour itself), the rows written there.
    done = rollups.rolled_up_to() - rollups.HOUR
    RollupProgress.objects.filter(pk=1).update(rolled_up_to=done)
    rollups.refresh_summaries()
    now = done + rollups.HOUR + timedelta(minutes=5)  # the hour after it
    ingest.ingest_results("eu", "eu@h", [result(outage, done + timedelta(minutes=1), latency_ms=900.0),
                                         result(outage, now - timedelta(minutes=2), ok=False)])
    fast, slow = summed_both_ways(outage, now)
    assert fast == slow
    verdict = rollups.window([outage.pk], rollups.summary_spans(now)[0], now)[(outage.pk, None)]
    assert fast.uptime_24h == verdict.uptime_percent < 100
    assert fast.latency_p95_24h_ms == round(verdict.percentile(0.95), 3)
    # The sparkline moved on by an hour: the row's hours an hour later, then the raw ones.
    assert fast.hours[0][0] == rollups.floor_to(now, rollups.HOUR) - 23 * rollups.HOUR
    assert dict((start, a) for start, a, _ in fast.hours)[done] == 900.0


def test_in_a_days_first_hour_before_its_roll_up_the_lists_30_days_leave_out_the_oldest_day(user):
    midnight = rollups.floor_to(timezone.now(), rollups.DAY) - rollups.DAY
    monitor = checked_with_an_outage(user, midnight - 3 * rollups.HOUR)
    last_hour = midnight - rollups.HOUR
    # A clean day 30 days back: in the 30 days seen from the day's last hour, not from the next day's first.
    oldest = rollups.summary_spans(last_hour)[1]
    Rollup.objects.create(monitor=monitor, resolution=Resolution.DAY, start=oldest, checks=1440,
                          covered_seconds=86400)
    # Rolled up to the day's last hour (not yet that hour itself), the rows written there.
    RollupProgress.objects.filter(pk=1).update(rolled_up_to=last_hour)
    MonitorSummary.objects.all().delete()
    rollups.refresh_summaries()
    in_the_last_hour = rollups.summaries([monitor.pk], now=last_hour + timedelta(minutes=5))[monitor.pk]
    now = midnight + timedelta(minutes=5)
    fast, slow = summed_both_ways(monitor, now)
    assert fast == slow
    month = rollups.window([monitor.pk], rollups.summary_spans(now)[1], now)[(monitor.pk, None)]
    assert fast.uptime_30d == month.uptime_percent < in_the_last_hour.uptime_30d < 100


def test_a_summary_row_without_its_next_hour_part_is_not_used_for_the_next_hour(user, outage):
    done = rollups.rolled_up_to()
    MonitorSummary.objects.update(next_day_covered_seconds=None)
    now = done + rollups.HOUR + timedelta(minutes=5)
    with CaptureQueriesContext(connection) as read:
        figures = rollups.summaries([outage.pk], now=now)[outage.pk]
    assert any('"monitors_rollup"' in q["sql"] for q in read.captured_queries)
    MonitorSummary.objects.all().delete()
    assert figures == rollups.summaries([outage.pk], now=now)[outage.pk]


def test_a_summary_row_of_an_older_roll_up_is_not_used(user, outage):
    done = rollups.rolled_up_to()
    MonitorSummary.objects.filter(monitor=outage).update(rolled_up_to=done - rollups.HOUR, day_down_seconds=0,
                                                         month_down_seconds=0)
    figures = rollups.summaries([outage.pk], now=done + timedelta(minutes=5))[outage.pk]
    assert figures.uptime_24h < 100
    # The next roll-up brings it up to date.
    rollups.refresh_summaries()
    assert MonitorSummary.objects.get(monitor=outage).rolled_up_to == done


def minutes_of(api, monitor, since, until) -> dict:
    body = api.get(f"/api/v1/monitors/{monitor.pk}/series/?resolution=minute&since={iso(since)}"
                   f"&until={iso(until)}").json()
    return {bucket["start"]: bucket for bucket in body["buckets"]}


def test_a_minute_series_asked_again_keeps_its_closed_hours_and_sums_only_the_rest(api, outage, hour):
    since, until = hour + timedelta(minutes=30), hour + timedelta(hours=3)
    first = minutes_of(api, outage, since, until)
    # The raw results of a rolled-up hour are not read again: gone, they still show.
    CheckResult.objects.filter(monitor=outage, scheduled_at__gte=hour + rollups.HOUR,
                               scheduled_at__lt=hour + 2 * rollups.HOUR).delete()
    assert minutes_of(api, outage, since, until) == first
    # A range a minute later: the same hours, the same figures.
    later = minutes_of(api, outage, since + timedelta(minutes=1), until)
    assert later == {start: bucket for start, bucket in first.items() if start != iso(since)}
    # Summed afresh (nothing kept) the deleted hour is empty: the kept figures were what was shown.
    from monitors.api.minutes import kept

    kept.clear()
    assert minutes_of(api, outage, since, until)[iso(hour + 90 * timedelta(minutes=1))]["checks"] == 0


def test_a_late_result_in_a_kept_hour_shows_once_the_hour_is_rolled_up_again(api, outage, hour):
    since, until = hour, hour + timedelta(hours=3)
    minute = hour + timedelta(minutes=100, seconds=30)  # between two slots: a slot of its own
    assert iso(minute.replace(second=0)) in minutes_of(api, outage, since, until)
    before = minutes_of(api, outage, since, until)[iso(minute.replace(second=0))]["checks"]
    ingest.ingest_results("eu", "eu@h", [result(outage, minute, ok=False)])
    rollups.roll_up()  # late results first: the hour is summed again
    assert minutes_of(api, outage, since, until)[iso(minute.replace(second=0))]["checks"] == before + 1


def test_a_kept_hours_downtime_follows_its_incidents_and_the_monitors_interval(api, outage, hour):
    since, until = hour, hour + timedelta(hours=3)
    down = {start for start, bucket in minutes_of(api, outage, since, until).items() if bucket["downtime_seconds"]}
    assert len(down) == 10
    outage.interval = 120
    outage.save(update_fields=["interval"])
    assert {b["downtime_seconds"] for s, b in minutes_of(api, outage, since, until).items() if s in down} == {120}
    outage.incidents.all().delete()
    assert not any(b["downtime_seconds"] for b in minutes_of(api, outage, since, until).values())
