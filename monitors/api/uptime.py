"""The uptime and series endpoints: their query parameters (a 400 naming the
parameter for anything wrong), and their answers, summed by monitors/rollups.py."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.utils import timezone
from rest_framework import renderers, serializers

from ..choices import Resolution
from ..models import Incident, Monitor
from ..regions import Region
from ..rollups import DAY, HOUR, MINUTE, Stats, ceil_to, floor_to, retention, window
from .minutes import LATENCY_NAMES, Figures, figures_of, minute_figures, series_figures

TIME = serializers.DateTimeField()  # the API's own rendering of a time
WINDOWS = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY, "90d": 90 * DAY, "365d": 365 * DAY}
SIZES = {Resolution.MINUTE: MINUTE, Resolution.HOUR: HOUR, Resolution.DAY: DAY}
# A series without since: the last day of minutes, week of hours, 90 days.
DEFAULT_SPANS = {Resolution.MINUTE: DAY, Resolution.HOUR: 7 * DAY, Resolution.DAY: 90 * DAY}


class RangeQuery(serializers.Serializer):
    # Read in UTC (a time without an offset is UTC; one whose offset
    # PostgreSQL refuses, such as -20:00, is converted), or a 400.
    since = serializers.DateTimeField(required=False, default_timezone=dt_timezone.utc,
                                      help_text="ISO 8601; the range's start (inclusive).")
    until = serializers.DateTimeField(required=False, default_timezone=dt_timezone.utc,
                                      help_text="ISO 8601; the range's end (exclusive); default now.")
    region = serializers.CharField(required=False, help_text="Only this region's results.")

    def validate_region(self, name: str) -> Region:
        region = Region.objects.filter(name=name).first()
        if region is None:
            raise serializers.ValidationError(f"No region named {name!r}.")
        return region

    def check_range(self, since: datetime, until: datetime, kept: timedelta, now: datetime) -> None:
        if until <= since:
            raise serializers.ValidationError({"until": "Must be after since."})
        if since < now - kept:
            raise serializers.ValidationError(
                {"since": f"Reaches further back than these figures are kept ({kept.days} days)."})


class UptimeQuery(RangeQuery):
    window = serializers.ChoiceField(choices=list(WINDOWS), required=False,
                                     help_text="The range ending now; default 24h. Or give since (and until).")

    def validate(self, attrs: dict) -> dict:
        now = timezone.now()
        if "window" in attrs and ("since" in attrs or "until" in attrs):
            raise serializers.ValidationError({"window": "Give a window, or since and until, not both."})
        if "until" in attrs and "since" not in attrs:
            raise serializers.ValidationError({"since": "Required with until."})
        if "since" in attrs:
            attrs.setdefault("until", now)
        else:
            attrs["until"] = now
            attrs["since"] = now - WINDOWS[attrs.get("window", "24h")]
        self.check_range(attrs["since"], attrs["until"], retention(Resolution.DAY), now)
        return attrs


class SeriesQuery(RangeQuery):
    resolution = serializers.ChoiceField(choices=Resolution.values, required=False,
                                         help_text="Bucket size; default hour.")

    def validate(self, attrs: dict) -> dict:
        now = timezone.now()
        resolution = attrs.setdefault("resolution", Resolution.HOUR)
        size = SIZES[resolution]
        # On bucket boundaries: a range that is exact stays so, others widen to whole buckets.
        until = ceil_to(attrs.get("until", now), size)
        since = floor_to(attrs["since"], size) if "since" in attrs else until - DEFAULT_SPANS[resolution]
        kept = retention(resolution)
        if "since" not in attrs:
            since = max(since, floor_to(now - kept, size) + size)
        self.check_range(since, until, kept + size, now)
        attrs["since"], attrs["until"] = since, until
        return attrs


def uptime(monitor: Monitor, since: datetime, until: datetime, region: Region | None) -> dict:
    region_ids = [region.pk] if region else None
    sums = window([monitor.pk], since, until, region_ids)
    names = dict(Region.objects.filter(pk__in=[r for m, r in sums if r is not None]).values_list("pk", "name"))
    regions = {names[r]: _figures(stats) for (m, r), stats in sorted(sums.items(), key=lambda i: str(i[0][1]))
               if r is not None}
    overall = sums.get((monitor.pk, region.pk if region else None), Stats())
    incidents = Incident.objects.filter(monitor=monitor, started_at__lt=until).exclude(resolved_at__lte=since)
    return {
        "monitor": monitor.pk, "since": since, "until": until, "region": region.name if region else None,
        "uptime_percent": overall.uptime_percent, "downtime_seconds": round(overall.down_seconds, 3),
        "incidents": incidents.count(), "checks": overall.checks, "failed_checks": overall.failed_checks,
        "latency_ms": overall.latency(), "regions": regions,
    }


def _figures(stats: Stats) -> dict:
    return {"uptime_percent": stats.uptime_percent, "checks": stats.checks, "failed_checks": stats.failed_checks,
            "latency_ms": stats.latency()}


def series_of(monitor: Monitor, resolution: str, since: datetime, until: datetime, region: Region | None) -> dict:
    """Every bucket of the range, oldest first; one with no data has
    `uptime_percent: null` (a gap, never downtime)."""
    size = SIZES[resolution]
    if size == MINUTE:
        figures = minute_figures(monitor, since, until, region)
    else:
        figures = series_figures(monitor, resolution, since, until, region)
    get, rows = figures.get, []
    # The API renders times in the current time zone; in UTC (the default)
    # that is isoformat with a Z, without DRF's conversion per bucket.
    utc = timezone.get_current_timezone_name() == "UTC"
    # Built as plain data: a serializer per bucket costs ~70 µs, 100 ms for a
    # day of minutes; an empty bucket is a copy of one row built once.
    empty = _bucket("", EMPTY)
    start = since
    for text in _minutes_in_utc(since, until) if utc and size == MINUTE else ():
        found = get(start)
        rows.append(_bucket(text, found) if found is not None else {**empty, "start": text})
        start += size
    while start < until:
        text = start.isoformat().replace("+00:00", "Z") if utc else TIME.to_representation(start)
        found = get(start)
        rows.append(_bucket(text, found) if found is not None else {**empty, "start": text})
        start += size
    return {"monitor": monitor.pk, "resolution": resolution, "since": TIME.to_representation(since),
            "until": TIME.to_representation(until), "region": region.name if region else None, "buckets": rows}


EMPTY = figures_of(Stats())  # a bucket with no data
MINUTE_ENDINGS = [f"{minute:02d}:00Z" for minute in range(60)]


def _minutes_in_utc(since: datetime, until: datetime) -> list[str]:
    """The minutes of [since, until) as the API renders them in UTC, each
    hour's start formatted once (a day of minutes: 24 isoformats, not 1,440);
    none if since is not on a minute (then the caller formats each)."""
    if since.second or since.microsecond:
        return []
    out, hour, first = [], since.replace(minute=0), since.minute
    while hour < until:
        prefix = hour.isoformat()[:14]  # "2026-12-05T13:", then "04:00Z"
        out += [prefix + ending for ending in MINUTE_ENDINGS[first:]]
        hour, first = hour + HOUR, 0
    del out[max(0, -((since - until) // MINUTE)):]  # the minutes from since before until, rounded up
    return out


def _bucket(start: str, figures: Figures) -> dict:
    checks, failed, uptime_percent, down, avg, least, most, p50, p95, p99 = figures
    return {"start": start, "checks": checks, "failed_checks": failed, "uptime_percent": uptime_percent,
            "downtime_seconds": down, "latency_ms": {"avg": avg, "min": least, "max": most, "p50": p50,
                                                     "p95": p95, "p99": p99}}


class LatencySerializer(serializers.Serializer):
    avg = serializers.FloatField(allow_null=True)
    min = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class RegionUptimeSerializer(serializers.Serializer):
    uptime_percent = serializers.FloatField(allow_null=True)
    checks = serializers.IntegerField()
    failed_checks = serializers.IntegerField()
    latency_ms = LatencySerializer()


class UptimeSerializer(RegionUptimeSerializer):
    """The schema of an uptime answer (documentation; built by `uptime`)."""

    monitor = serializers.IntegerField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    region = serializers.CharField(allow_null=True)
    downtime_seconds = serializers.FloatField()
    incidents = serializers.IntegerField(help_text="Outages overlapping the range.")
    regions = serializers.DictField(child=RegionUptimeSerializer())


class BucketSerializer(RegionUptimeSerializer):
    start = serializers.DateTimeField()
    downtime_seconds = serializers.FloatField()


class SeriesSerializer(serializers.Serializer):
    monitor = serializers.IntegerField()
    resolution = serializers.ChoiceField(choices=Resolution.values)
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    region = serializers.CharField(allow_null=True)
    buckets = BucketSerializer(many=True)


CSV_COLUMNS = ["start", "checks", "failed_checks", "uptime_percent", "downtime_seconds",
               *[f"latency_{name}_ms" for name in LATENCY_NAMES]]


class SeriesCSVRenderer(renderers.BaseRenderer):
    """A series as CSV, one bucket a line, for spreadsheets."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out)
        if not isinstance(data, dict) or "buckets" not in data:  # an error: its fields, flattened
            writer.writerow(["field", "error"])
            for name, errors in (data or {}).items():
                writer.writerow([name, " ".join(map(str, errors if isinstance(errors, list) else [errors]))])
            return out.getvalue().encode()
        writer.writerow(CSV_COLUMNS)
        for bucket in data["buckets"]:
            latency = bucket["latency_ms"]
            writer.writerow([bucket["start"], bucket["checks"], bucket["failed_checks"],
                             _blank(bucket["uptime_percent"]), bucket["downtime_seconds"],
                             *[_blank(latency[name]) for name in LATENCY_NAMES]])
        return out.getvalue().encode()


def _blank(value) -> str:
    return "" if value is None else str(value)
