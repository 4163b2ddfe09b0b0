"""A minute series' figures, with its closed hours kept in each web process.

A day of minutes is summed from ~2,880 raw results of a monitor checked
every minute from two regions (rollups.series): most of the request's CPU,
and a dashboard asks for the same day again every minute. An hour that is
rolled up changes only when something it is summed from does, and each such
thing is in the hour's key: its rollup row (written anew, with new counts,
when late results arrive), the monitor's interval, quorum and latency
threshold, and the incidents around the hour (downtime is their span). So
its 60 buckets' figures are kept (a bounded number of hours per process,
forgotten all at once when full: loopr.cache.remember) and only the rest of
the range is summed again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q

from loopr.cache import remember

from ..choices import Resolution
from ..models import Incident, Monitor, Rollup
from ..regions import Region
from ..rollups import HOUR, Stats, floor_to, rolled_up_to, series

# A bucket as the API shows it: checks, failed_checks, uptime_percent,
# downtime_seconds, then latency avg, min, max, p50, p95, p99 (ms).
Figures = tuple
LATENCY_NAMES = ("avg", "min", "max", "p50", "p95", "p99")

# ~25 kB an hour (measured with tracemalloc): 1,000 hours, a day of minutes of
# 40 monitors, is ~25 MB a process.
KEPT_HOURS = 1000


def figures_of(stats: Stats) -> Figures:
    latency = stats.latency()
    return (stats.checks, stats.failed_checks, stats.uptime_percent, round(stats.down_seconds, 3),
            *[latency[name] for name in LATENCY_NAMES])


def series_figures(monitor: Monitor, resolution: str, since: datetime, until: datetime, region: Region | None
                   ) -> dict[datetime, Figures]:
    """Each bucket of [since, until) with data (of the region, or the
    monitor's verdict) summed afresh: its figures by its start."""
    key = region.pk if region else None
    return {start: figures_of(stats) for (region_id, start), stats in series(
        monitor.pk, resolution, since, until, [key] if region else None, per_region=region is not None).items()
        if region_id == key}


# What _keys() makes of an hour -> {minute start: figures}, per process.
kept: dict[tuple, dict[datetime, Figures]] = {}


def minute_figures(monitor: Monitor, since: datetime, until: datetime, region: Region | None
                   ) -> dict[datetime, Figures]:
    """The figures of each minute of [since, until) that has data (of the
    region, or the monitor's verdict), by the minute's start; minutes of
    since's hour before since may be there too."""
    key_region = region.pk if region else None
    done = rolled_up_to()
    # since's hour whole: kept for the next request, whose range starts a minute later.
    first = floor_to(since, HOUR)
    last = floor_to(until, HOUR) if done is None else min(floor_to(until, HOUR), done)
    closed = [first + index * HOUR for index in range(int((last - first) / HOUR))] if last > first else []
    out: dict[datetime, Figures] = {}
    missing: list[datetime] = []
    keys = _keys(monitor, closed, key_region)
    for hour in closed:
        hit = kept.get(keys[hour])
        if hit is None:
            missing.append(hour)
        else:
            out.update(hit)
    for start, end in _spans(since, until, closed, missing):
        computed = series_figures(monitor, Resolution.MINUTE, start, end, region)
        out.update(computed)
        for hour in missing:
            if start <= hour < end:
                remember(kept, keys[hour], {minute: figures for minute, figures in computed.items()
                                            if hour <= minute < hour + HOUR}, KEPT_HOURS)
    return out


def _spans(since: datetime, until: datetime, closed: list[datetime], missing: list[datetime]
           ) -> list[tuple[datetime, datetime]]:
    """The parts of the range to sum: the closed hours not kept (whole), then
    what follows the closed hours."""
    if not closed:
        return [(since, until)]
    spans: list[tuple[datetime, datetime]] = []
    for start, end in [(hour, hour + HOUR) for hour in missing] + [(closed[-1] + HOUR, until)]:
        if start >= end:
            continue
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def _keys(monitor: Monitor, hours: list[datetime], region_id: int | None) -> dict[datetime, tuple]:
    """What each closed hour's figures are summed from (see the module's docstring)."""
    if not hours:
        return {}
    rollups = Rollup.objects.filter(monitor=monitor, resolution=Resolution.HOUR, start__gte=hours[0],
                                    start__lte=hours[-1])
    rollups = rollups.filter(region_id=region_id) if region_id is not None else rollups.filter(region__isnull=True)
    versions = {start: rest for start, *rest in rollups.values_list(
        "start", "id", "checks", "failed_checks", "missed_checks", "latency_count", "covered_seconds",
        "down_seconds")}
    # An incident moves its slots by half an interval (MonitorTerms.is_down): a margin of one.
    margin = timedelta(seconds=monitor.interval)
    incidents = list(Incident.objects.filter(monitor=monitor, started_at__lt=hours[-1] + HOUR + margin).filter(
        Q(resolved_at__isnull=True) | Q(resolved_at__gt=hours[0] - margin)).order_by("started_at", "pk")
        .values_list("started_at", "resolved_at"))
    terms = (monitor.pk, region_id, monitor.interval, monitor.quorum, monitor.latency_threshold_ms)
    keys = {}
    for hour in hours:
        around = tuple((start, end) for start, end in incidents
                       if start < hour + HOUR + margin and (end is None or end > hour - margin))
        keys[hour] = (*terms, hour, tuple(versions.get(hour, ())), around)
    return keys
