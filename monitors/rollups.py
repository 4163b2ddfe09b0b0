"""Rollups: each monitor's results summed per hour and per day, per region
and for its all-regions verdict, so that uptime and latency percentiles of
any window come from a few rows instead of a scan of raw results.

Rolling up is a periodic task (`roll_up`), idempotent and cheap: an hour is
summed from its raw results once it has closed (`CLOSE_MARGIN` after its
end), replacing whatever rows it had, and its day is summed again from its
hours. Counting is exactly-once by construction — a result is stored once
(the natural key) and a bucket is always recomputed from what is stored,
never incremented. A late result (a slow region, a redelivered batch) for an
hour already rolled up is found by its id, which grows with every insert:
each run re-sums the hours of results inserted since the run before last.

What is not yet rolled up (the current hour, minutes) is summed from raw
results when asked, with the same code, so every figure includes every
stored result.

Definitions (the README's "Uptime" section says the same):
- a *check* is a stored result that ran (a missed slot is not a check; it is
  no data); `failed_checks` are those with ok = false;
- *covered* time is the slots with data outside maintenance, each weighing
  the monitor's interval; *down* time is the covered slots inside an
  incident (from its first failed check to its recovery). Uptime is
  1 - down / covered: maintenance and no data are neither up nor down;
- a region's own uptime weighs its failed checks instead (it has no incidents);
- latency percentiles are over successful checks, from a histogram with
  `BUCKETS_PER_DOUBLING` log-spaced buckets per doubling: within
  `MAX_PERCENTILE_ERROR` of the exact value.
"""

from __future__ import annotations

import math
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial, reduce
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import F, Func, IntegerField, Q, Sum
from django.utils import timezone

from . import partitions
from .choices import Resolution
from .models import CheckResult, Incident, Monitor, MonitorSummary, Rollup, RollupProgress
from .regions import Region

HOUR, DAY, MINUTE = timedelta(hours=1), timedelta(days=1), timedelta(minutes=1)
BUCKETS_PER_DOUBLING = 8
# A percentile is reported as its bucket's geometric middle.
MAX_PERCENTILE_ERROR = 2 ** (1 / (2 * BUCKETS_PER_DOUBLING)) - 1
# An hour is rolled up this long after it ended: results of its last slots
# arrive within a timeout and the verdict grace. Later ones are late results.
CLOSE_MARGIN = timedelta(minutes=2)
MONITOR_CHUNK = 500
ROW_FIELDS = ("monitor_id", "region_id", "scheduled_at", "ok", "latency_ms", "in_maintenance")
STAT_FIELDS = ("checks", "failed_checks", "maintenance_checks", "degraded_checks", "missed_checks",
               "covered_seconds", "down_seconds", "latency_count", "latency_sum")


def bucket_of(latency_ms: float) -> int:
    """Bucket 0 is under 1 ms; bucket k ≥ 1 is [2^((k-1)/8), 2^(k/8)) ms (a byte's worth)."""
    if latency_ms < 1:
        return 0
    # The last bucket (from 2^(254/8) ms: 254 years) holds anything longer.
    return min(int(math.log2(latency_ms) * BUCKETS_PER_DOUBLING) + 1, 255)


def bucket_value(bucket: int) -> float:
    return 0.5 if bucket == 0 else 2 ** ((bucket - 0.5) / BUCKETS_PER_DOUBLING)


# Looked up rather than computed: a day of minutes reads ~4,000 of them.
BUCKET_VALUES = tuple(bucket_value(bucket) for bucket in range(256))
LATENCY_PERCENTILES = (0.50, 0.95, 0.99)


def pack_histogram(histogram: Counter) -> bytes:
    """The first bucket's number, then each count from it to the last as an
    unsigned LEB128 varint: a typical hour's histogram is a few dozen bytes
    (as JSON it was ten times that, in a table of hundreds of millions of rows)."""
    buckets = [b for b, count in histogram.items() if count]
    if not buckets:
        return b""
    low, high = min(buckets), max(buckets)
    out = bytearray([low])
    for bucket in range(low, high + 1):
        count = histogram.get(bucket, 0)
        while count >= 0x80:
            out.append(count & 0x7F | 0x80)
            count >>= 7
        out.append(count)
    return bytes(out)


def unpack_histogram(data: bytes) -> Counter:
    histogram: Counter = Counter()
    if not data:
        return histogram
    bucket, count, shift = data[0], 0, 0
    for byte in data[1:]:
        count |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if count:
                histogram[bucket] = count
            bucket, count, shift = bucket + 1, 0, 0
    return histogram


def floor_to(at: datetime, size: timedelta) -> datetime:
    """The start of `at`'s bucket (UTC: days are UTC days)."""
    if at.tzinfo is UTC and size in _FLOORS:  # as below, without the round trip through a timestamp
        return at.replace(**_FLOORS[size])
    seconds = int(size.total_seconds())
    epoch = math.floor(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


_FLOORS = {MINUTE: {"second": 0, "microsecond": 0}, HOUR: {"minute": 0, "second": 0, "microsecond": 0},
           DAY: {"hour": 0, "minute": 0, "second": 0, "microsecond": 0}}


def ceil_to(at: datetime, size: timedelta) -> datetime:
    floor = floor_to(at, size)
    return floor if floor == at else floor + size


@dataclass
class Stats:
    """What a set of results adds up to; merging is addition."""

    checks: int = 0
    failed_checks: int = 0
    maintenance_checks: int = 0
    degraded_checks: int = 0
    missed_checks: int = 0
    covered_seconds: float = 0.0
    down_seconds: float = 0.0
    latency_count: int = 0
    latency_sum: float = 0.0
    latency_min: float | None = None
    latency_max: float | None = None
    # An empty Counter without Counter.__init__'s two Python calls (1.1 µs
    # against 0.1): summing a day of minutes makes 1,440 of them.
    histogram: Counter = field(default_factory=partial(Counter.__new__, Counter))

    def add(self, other: Stats) -> None:
        for name in STAT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency_min = _least(self.latency_min, other.latency_min)
        self.latency_max = _most(self.latency_max, other.latency_max)
        self.histogram.update(other.histogram)

    def note_latency(self, latency_ms: float) -> None:
        # Once per result when rolling up: plain comparisons, no helper calls.
        self.latency_count += 1
        self.latency_sum += latency_ms
        if self.latency_min is None or latency_ms < self.latency_min:
            self.latency_min = latency_ms
        if self.latency_max is None or latency_ms > self.latency_max:
            self.latency_max = latency_ms
        self.histogram[bucket_of(latency_ms)] += 1

    @classmethod
    def of(cls, rollup: Rollup) -> Stats:
        stats = cls(**{name: getattr(rollup, name) for name in STAT_FIELDS},
                    latency_min=rollup.latency_min, latency_max=rollup.latency_max)
        stats.histogram = unpack_histogram(bytes(rollup.histogram))
        return stats

    def rollup_fields(self) -> dict:
        return {**{name: getattr(self, name) for name in STAT_FIELDS}, "latency_min": self.latency_min,
                "latency_max": self.latency_max, "histogram": pack_histogram(self.histogram)}

    @property
    def uptime_percent(self) -> float | None:
        return uptime_percent(self.covered_seconds, self.down_seconds)

    def percentile(self, q: float) -> float | None:
        return self.percentiles((q,))[0]

    def percentiles(self, qs: tuple[float, ...]) -> list[float | None]:
        """Nearest-rank percentiles, ascending `qs`, in one walk of the histogram."""
        count = self.latency_count
        if not count:
            return [None] * len(qs)
        least, most, histogram = self.latency_min, self.latency_max, self.histogram
        if len(histogram) == 1:  # a minute's bucket, often: every percentile is its value
            (bucket,) = histogram
            return [min(max(BUCKET_VALUES[bucket], least), most)] * len(qs)
        if len(histogram) == 2:  # a minute's bucket from two regions, most often: the walk below, unrolled
            (low, below), (high, above) = histogram.items()  # (comparisons, not min/max: half the time)
            if high < low:
                low, below, high, above = high, above, low, below
            at_low, at_high = BUCKET_VALUES[low], BUCKET_VALUES[high]
            at_low = least if at_low < least else most if at_low > most else at_low
            at_high = least if at_high < least else most if at_high > most else at_high
            found = []
            for q in qs:
                rank = q * count
                if rank < 1:
                    rank = 1
                found.append(at_low if below >= rank else at_high if below + above >= rank else most)
            return found
        # The rank max(1, ceil(q × count)) is reached when the (whole) count
        # seen so far is at least max(1, q × count): the same, with no ceil.
        ranks = [max(1, q * count) for q in qs]
        found: list[float | None] = []
        seen, wanted, left = 0, ranks[0], len(ranks)
        for bucket in sorted(histogram):
            seen += histogram[bucket]
            if seen >= wanted:
                value = min(max(BUCKET_VALUES[bucket], least), most)
                while seen >= wanted:
                    found.append(value)
                    left -= 1
                    if not left:
                        return found
                    wanted = ranks[-left]
        return found + [most] * left

    def latency(self) -> dict[str, float | None]:
        count = self.latency_count
        if not count:
            return {"avg": None, "min": self.latency_min, "max": self.latency_max, "p50": None, "p95": None,
                    "p99": None}
        p50, p95, p99 = self.percentiles(LATENCY_PERCENTILES)
        if p50 == p99:  # one value (a minute's bucket, often), rounded once: 1,440 of them a minute series
            p50 = p95 = p99 = round(p50, 3)
        else:
            p50, p95, p99 = round(p50, 3), round(p95, 3), round(p99, 3)
        return {"avg": round(self.latency_sum / count, 3), "min": self.latency_min, "max": self.latency_max,
                "p50": p50, "p95": p95, "p99": p99}


def uptime_percent(covered_seconds: float, down_seconds: float) -> float | None:
    """Floored to three decimals: any downtime shows below 100."""
    if covered_seconds <= 0:
        return None
    share = max(0.0, 1 - down_seconds / covered_seconds)
    return math.floor(round(share * 100_000, 6)) / 1000


def _least(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _most(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(frozen=True)
class MonitorTerms:
    """What summing a monitor's results needs to know of it."""

    interval: int
    latency_threshold_ms: int | None
    quorum: int | None
    incidents: tuple[tuple[datetime, datetime | None], ...] = ()

    def is_down(self, slot: datetime) -> bool:
        """Whether the slot lies in an outage. An incident's times are its
        checks' start times, a little after their slots: shifted back half an
        interval, its first failed slot is in and its recovering slot out."""
        half = timedelta(seconds=self.interval / 2)
        return any(start - half <= slot and (end is None or slot < end - half) for start, end in self.incidents)

    def slot_failed(self, failed: int, reported: int) -> bool:
        return failed >= (self.quorum or reported // 2 + 1)


Key = tuple[int, int | None, datetime]  # monitor, region (None: the verdict), bucket start


def aggregate(rows: Iterable[tuple], terms: dict[int, MonitorTerms], bucket: Callable[[datetime], datetime],
              per_region: bool = True) -> dict[Key, Stats]:
    """Sum raw rows (ROW_FIELDS) per monitor, region and bucket, and each
    monitor's all-regions verdict per bucket (region None); only the
    verdict without `per_region`.

    One pass, the hot loop of rolling up: a region's figures row by row; the
    verdict's counts are its regions' summed, its time comes from its slots."""
    out: dict[Key, Stats] = {}
    slots: dict[tuple[int, datetime], list] = {}  # (monitor, slot) -> [ran, in maintenance, bucket start]
    starts: dict[datetime, datetime] = {}
    for monitor_id, region_id, slot, ok, latency, in_maintenance in rows:
        start = starts.get(slot)
        if start is None:
            start = starts[slot] = bucket(slot)
        key = (monitor_id, region_id if per_region else None, start)
        stats = out.get(key)
        if stats is None:
            stats = out[key] = Stats()
        flags = slots.get((monitor_id, slot))
        if flags is None:
            flags = slots[(monitor_id, slot)] = [False, False, start]
        if in_maintenance:
            flags[1] = True
        if ok is None:
            stats.missed_checks += 1
            continue
        flags[0] = True
        term = terms[monitor_id]
        stats.checks += 1
        if in_maintenance:
            stats.maintenance_checks += 1
        else:
            stats.covered_seconds += term.interval
        if not ok:
            stats.failed_checks += 1
            if not in_maintenance:
                stats.down_seconds += term.interval
        elif latency is not None:
            stats.note_latency(latency)
            if term.latency_threshold_ms is not None and latency > term.latency_threshold_ms:
                stats.degraded_checks += 1
    verdicts: dict[Key, Stats] = out  # counted row by row above
    if per_region:
        verdicts = defaultdict(Stats)
        for (monitor_id, _, start), stats in out.items():
            verdicts[(monitor_id, None, start)].add(stats)
    for verdict in verdicts.values():
        verdict.covered_seconds = verdict.down_seconds = 0.0
    for (monitor_id, slot), (ran, in_maintenance, start) in slots.items():
        if ran and not in_maintenance:
            term, verdict = terms[monitor_id], verdicts[(monitor_id, None, start)]
            verdict.covered_seconds += term.interval
            if term.incidents and term.is_down(slot):
                verdict.down_seconds += term.interval
    if per_region:
        out.update(verdicts)
    return out


def monitor_terms(monitor_ids: list[int], since: datetime, until: datetime) -> dict[int, MonitorTerms]:
    incidents: dict[int, list] = defaultdict(list)
    overlapping = Incident.objects.filter(monitor_id__in=monitor_ids, started_at__lt=until).filter(
        Q(resolved_at__isnull=True) | Q(resolved_at__gt=since))
    for monitor_id, start, end in overlapping.values_list("monitor_id", "started_at", "resolved_at"):
        incidents[monitor_id].append((start, end))
    return {
        pk: MonitorTerms(interval, threshold, quorum, tuple(incidents[pk]))
        for pk, interval, threshold, quorum in Monitor.objects.filter(pk__in=monitor_ids).values_list(
            "pk", "interval", "latency_threshold_ms", "quorum")
    }


def raw_rows(monitor_ids: list[int], since: datetime, until: datetime, region_ids: list[int] | None = None):
    # Every region named: the natural key (monitor, region, scheduled_at) is
    # then one index range per monitor and region.
    regions = region_ids if region_ids is not None else list(Region.objects.values_list("pk", flat=True))
    return CheckResult.objects.filter(monitor_id__in=monitor_ids, region_id__in=regions, scheduled_at__gte=since,
                                      scheduled_at__lt=until).values_list(*ROW_FIELDS)


def sum_raw(monitor_ids: list[int], since: datetime, until: datetime, bucket: Callable[[datetime], datetime],
            region_ids: list[int] | None = None, per_region: bool = True) -> dict[Key, Stats]:
    if since >= until:
        return {}
    return aggregate(_fetch(raw_rows(monitor_ids, since, until, region_ids)),
                     monitor_terms(monitor_ids, since, until), bucket, per_region)


def _fetch(queryset) -> Iterable[tuple]:
    """The rows as the driver gives them on PostgreSQL (already typed: no
    per-row conversion); through the ORM elsewhere (SQLite gives text times)."""
    if not partitions.partitioned():
        return queryset
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:  # no region at all yet
        return []
    with connection.cursor() as cursor:
        if connection.timezone is UTC:
            # psycopg's own timestamptz loader (in C with psycopg[binary]):
            # Django's parses each time in Python, ~3 µs a row, a third of
            # the minute series' CPU. Both give UTC times when the session's
            # time zone is UTC, as Django sets it when its own is (USE_TZ
            # without a database TIME_ZONE).
            cursor.cursor.adapters.register_loader("timestamptz", _timestamptz_loader())
        cursor.execute(sql, params)
        return cursor.fetchall()


def _timestamptz_loader():
    import psycopg
    from psycopg.pq import Format

    return psycopg.adapters.get_loader(psycopg.postgres.types["timestamptz"].oid, Format.TEXT)


# --- rolling up ----------------------------------------------------------------------


def roll_up(now: datetime | None = None, budget_seconds: float = 20.0) -> tuple[int, bool]:
    """Roll up late results, then every closed hour not yet rolled up, then
    the monitors' summaries, within a time budget. Returns (hours rolled
    up, more_left)."""
    now = now or timezone.now()
    deadline = timezone.now() + timedelta(seconds=budget_seconds)
    roll_up_late_results()
    target = floor_to(now - CLOSE_MARGIN, HOUR)
    rolled = 0
    while True:
        with transaction.atomic():
            progress = _progress()
            hour = progress.rolled_up_to or _first_hour(now)
            if hour is None or hour >= target:
                break
            roll_up_hour(hour, day_complete=floor_to(hour + HOUR, DAY) == hour + HOUR)
            progress.rolled_up_to = hour + HOUR
            progress.save()
        rolled += 1
        if timezone.now() >= deadline:
            return rolled, True
    return rolled, not refresh_summaries(deadline=deadline)


def _first_hour(now: datetime) -> datetime | None:
    """Where rolling up starts on a new or upgraded install: the oldest
    retained result (one scan, once)."""
    oldest = CheckResult.objects.order_by("scheduled_at").values_list("scheduled_at", flat=True).first()
    if oldest is None:
        return None
    return floor_to(max(oldest, now - timedelta(days=settings.LOOPR_RESULTS_RETENTION_DAYS)), HOUR)


def _progress() -> RollupProgress:
    RollupProgress.objects.get_or_create(pk=1)
    return RollupProgress.objects.select_for_update().get(pk=1)


def roll_up_late_results() -> int:
    """Re-sum the rolled-up hours that results inserted since the run
    before last belong to; returns how many (monitor, hour) pairs."""
    with transaction.atomic():
        progress = _progress()
        newest = newest_result_id()
        touched: dict[datetime, set[int]] = defaultdict(set)
        if progress.rolled_up_to is None:
            # Nothing rolled up yet: every result stored so far is the
            # back-fill's, none is late. Only what comes after may be.
            progress.previous_seen_id = progress.seen_id = newest
            progress.save()
            return 0
        if progress.rolled_up_to is not None:
            late = CheckResult.objects.filter(id__gt=progress.previous_seen_id, id__lte=newest,
                                              scheduled_at__lt=progress.rolled_up_to)
            for monitor_id, slot in late.values_list("monitor_id", "scheduled_at").iterator():
                touched[floor_to(slot, HOUR)].add(monitor_id)
        for hour, monitor_ids in sorted(touched.items()):
            roll_up_hour(hour, sorted(monitor_ids), day_complete=floor_to(hour, DAY) + DAY <= progress.rolled_up_to)
        progress.previous_seen_id, progress.seen_id = progress.seen_id, newest
        progress.save()
        # Their summaries summed the hours as they were.
        refresh_summaries(sorted(set().union(*touched.values())))
    return sum(len(ids) for ids in touched.values())


def newest_result_id() -> int:
    with connection.cursor() as cursor:
        if partitions.partitioned():
            # The partitioned table has no index on id to take max() from;
            # the sequence's last value bounds every id handed out.
            cursor.execute("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM monitors_checkresult_ids")
        else:
            cursor.execute(f"SELECT coalesce(max(id), 0) FROM {CheckResult._meta.db_table}")
        return cursor.fetchone()[0]


def roll_up_hour(hour: datetime, monitor_ids: list[int] | None = None, day_complete: bool = False) -> int:
    """Replace the hour's rollups (of these monitors, or all) by the sum of
    its raw results, and, once its day is complete, the day's by the sum of
    its hours (a day still open is read from its hours)."""
    ids = monitor_ids if monitor_ids is not None else list(Monitor.objects.order_by("pk").values_list("pk", flat=True))
    written = 0
    for start in range(0, len(ids), MONITOR_CHUNK):
        chunk = ids[start : start + MONITOR_CHUNK]
        stats = sum_raw(chunk, hour, hour + HOUR, lambda slot: hour)
        Rollup.objects.filter(monitor_id__in=chunk, resolution=Resolution.HOUR, start=hour).delete()
        written += _write(stats, Resolution.HOUR)
        if day_complete:
            roll_up_day(floor_to(hour, DAY), chunk)
    return written


def roll_up_day(day: datetime, monitor_ids: list[int]) -> None:
    hours = Rollup.objects.filter(monitor_id__in=monitor_ids, resolution=Resolution.HOUR, start__gte=day,
                                  start__lt=day + DAY)
    stats: dict[Key, Stats] = defaultdict(Stats)
    for rollup in hours:
        stats[(rollup.monitor_id, rollup.region_id, day)].add(Stats.of(rollup))
    Rollup.objects.filter(monitor_id__in=monitor_ids, resolution=Resolution.DAY, start=day).delete()
    _write(stats, Resolution.DAY)


def _write(stats: dict[Key, Stats], resolution: str) -> int:
    rows = [
        Rollup(monitor_id=monitor_id, region_id=region_id, resolution=resolution, start=start, **s.rollup_fields())
        for (monitor_id, region_id, start), s in stats.items()
    ]
    Rollup.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


RETENTION_SETTINGS = {
    Resolution.MINUTE: "LOOPR_RESULTS_RETENTION_DAYS",
    Resolution.HOUR: "LOOPR_ROLLUP_HOUR_DAYS",
    Resolution.DAY: "LOOPR_ROLLUP_DAY_DAYS",
}


def retention(resolution: str) -> timedelta:
    """How far back buckets of this size are kept (minutes are the raw results)."""
    return timedelta(days=getattr(settings, RETENTION_SETTINGS[resolution]))


def prune_rollups(now: datetime | None = None, batch_size: int = 5000) -> int:
    """Drop hour and day buckets past their retention, one bounded batch each."""
    now = now or timezone.now()
    deleted = 0
    for resolution in (Resolution.HOUR, Resolution.DAY):
        old = Rollup.objects.filter(resolution=resolution, start__lt=now - retention(resolution))
        ids = list(old.order_by("start").values_list("pk", flat=True)[:batch_size])
        deleted += Rollup.objects.filter(pk__in=ids).delete()[0]
    return deleted


# --- reading -------------------------------------------------------------------------


def rolled_up_to() -> datetime | None:
    return RollupProgress.objects.filter(pk=1).values_list("rolled_up_to", flat=True).first()


def window(monitor_ids: list[int], since: datetime, until: datetime, region_ids: list[int] | None = None
           ) -> dict[tuple[int, int | None], Stats]:
    """Each monitor's sums over [since, until), per region and for its verdict
    (region None): whole days and hours from rollups, the rest from raw results."""
    done = rolled_up_to()
    edges_from, edges_to = ceil_to(since, HOUR), floor_to(until, HOUR)
    edges_to = edges_from if done is None else min(edges_to, max(done, edges_from))
    pieces: list[dict[Key, Stats]] = []
    if edges_from < edges_to:
        days_from, days_to = ceil_to(edges_from, DAY), floor_to(edges_to, DAY)
        if days_from < days_to:
            pieces.append(_rollups(monitor_ids, Resolution.DAY, days_from, days_to, region_ids))
            pieces.append(_rollups(monitor_ids, Resolution.HOUR, edges_from, days_from, region_ids))
            pieces.append(_rollups(monitor_ids, Resolution.HOUR, days_to, edges_to, region_ids))
        else:
            pieces.append(_rollups(monitor_ids, Resolution.HOUR, edges_from, edges_to, region_ids))
        pieces.append(sum_raw(monitor_ids, since, edges_from, lambda slot: since, region_ids))
        pieces.append(sum_raw(monitor_ids, edges_to, until, lambda slot: since, region_ids))
    else:
        pieces.append(sum_raw(monitor_ids, since, until, lambda slot: since, region_ids))
    total: dict[tuple[int, int | None], Stats] = defaultdict(Stats)
    for piece in pieces:
        for (monitor_id, region_id, _), stats in piece.items():
            total[(monitor_id, region_id)].add(stats)
    return total


@dataclass(frozen=True)
class Summary:
    """What the monitor lists show of each monitor."""

    uptime_24h: float | None = None
    uptime_30d: float | None = None
    latency_p95_24h_ms: float | None = None
    # The 24 hours of uptime_24h, oldest first: (start, average latency ms or
    # None, uptime percent or None) each, for the admin's sparkline.
    hours: tuple[tuple[datetime, float | None, float | None], ...] = ()


SPARK_HOURS = 24


def summary_spans(now: datetime) -> tuple[datetime, datetime]:
    """Where the spans of uptime_24h and uptime_30d start: the current hour
    and the 23 before it; today (UTC) and the 29 days before."""
    return floor_to(now, HOUR) - (SPARK_HOURS - 1) * HOUR, floor_to(now, DAY) - 29 * DAY


def summaries(monitor_ids: list[int], now: datetime | None = None, hours: bool = True) -> dict[int, Summary]:
    """Uptime of the last 24 hours and 30 days, the 24 hours' p95 and (with
    `hours`: the admin's sparkline) their hours for a page of monitors in a
    few queries: each monitor's MonitorSummary row (its rolled-up part,
    refreshed after each roll-up) and the raw results since that roll-up.
    A row of the hour before serves too, by its `next_` columns: the hour
    just turned and not yet rolled up, or rolled up and its rows still being
    written. A monitor without either (new, or a row older still) is summed
    from its rollups instead: the same figures, more rows read."""
    now = now or timezone.now()
    if not monitor_ids:
        return {}
    hours_from, days_from = summary_spans(now)
    current = floor_to(now, HOUR)
    done = rolled_up_to()
    day: dict[int, Stats] = {}
    month: dict[int, Stats] = {}
    raw_from: dict[int, datetime] = {}
    hourly: dict[tuple[int, datetime], Stats] = {}
    points: dict[tuple[int, datetime], tuple] = {}  # the summary rows' hours, as shown
    if done is not None and done >= current - HOUR:
        # Plain values: a page's 100 rows as model instances (and their hours'
        # JSON where they are not shown) were a third of the API list's CPU.
        rows = MonitorSummary.objects.filter(monitor_id__in=monitor_ids, rolled_up_to__in=[current, current - HOUR])
        for pk, upto, *columns in rows.values_list("monitor_id", "rolled_up_to", *SUMMARY_COLUMNS,
                                                   *(["hours"] if hours else [])):
            ours = columns[:_COLUMNS_A_HOUR] if upto == current else columns[_COLUMNS_A_HOUR:2 * _COLUMNS_A_HOUR]
            covered, down, count, total, least, most, histogram, month_covered, month_down = ours
            if covered is None:  # a row from before the next-hour columns
                continue
            day[pk] = Stats(covered_seconds=covered, down_seconds=down, latency_count=count, latency_sum=total,
                            latency_min=least, latency_max=most, histogram=unpack_histogram(bytes(histogram)))
            month[pk] = Stats(covered_seconds=month_covered, down_seconds=month_down)
            raw_from[pk] = upto
            first = upto - (SPARK_HOURS - 1) * HOUR  # the row's hours start an hour early if it is the hour before's
            for index, point in enumerate(columns[2 * _COLUMNS_A_HOUR] if hours else ()):
                start = first + index * HOUR
                if point is not None and start >= hours_from:
                    average, covered, down = point
                    points[(pk, start)] = (average, uptime_percent(covered, down))
    rest = [pk for pk in monitor_ids if pk not in day]
    rest_raw_from = hours_from if done is None else max(min(done, now), hours_from)
    for pk in rest:
        day[pk], month[pk], raw_from[pk] = Stats(), Stats(), rest_raw_from
    if rest:
        whole_days_to = floor_to(rest_raw_from, DAY)
        for (pk, _, start), stats in _rollups(rest, Resolution.HOUR, min(hours_from, whole_days_to), rest_raw_from,
                                              None, True).items():
            if start >= hours_from:
                day[pk].add(stats)
                hourly[(pk, start)] = stats
            if start >= whole_days_to:
                month[pk].add(stats)
        for (pk, _), stats in _sums(rest, Resolution.DAY, days_from, whole_days_to).items():
            month[pk].add(stats)
    # Since each one's roll-up: raw results (per hour for the sparkline).
    bucket = (lambda slot: floor_to(slot, HOUR)) if hours else (lambda slot: hours_from)
    groups: dict[datetime, list[int]] = defaultdict(list)
    for pk in monitor_ids:
        groups[raw_from[pk]].append(pk)
    for since, ids in groups.items():
        for (pk, _, start), stats in sum_raw(ids, since, now, bucket, per_region=False).items():
            day[pk].add(stats)
            month[pk].covered_seconds += stats.covered_seconds  # uptime only: no histogram to merge
            month[pk].down_seconds += stats.down_seconds
            if hours:
                hourly.setdefault((pk, start), Stats()).add(stats)
    out = {}
    starts = [hours_from + index * HOUR for index in range(SPARK_HOURS)] if hours else []
    for pk in monitor_ids:
        shown = []
        for start in starts:
            point = points.get((pk, start))
            if point is None:
                stats = hourly.get((pk, start))
                point = (_average(stats), stats.uptime_percent) if stats else (None, None)
            shown.append((start, *point))
        out[pk] = Summary(day[pk].uptime_percent, month[pk].uptime_percent, _round(day[pk].percentile(0.95)),
                          tuple(shown))
    return out


_DAY_COLUMNS = ["covered_seconds", "down_seconds", "latency_count", "latency_sum", "latency_min", "latency_max",
                "histogram"]
# A summary row's figures for its own hour, then for the hour after it.
SUMMARY_COLUMNS = [*[f"day_{name}" for name in _DAY_COLUMNS], "month_covered_seconds", "month_down_seconds",
                   *[f"next_day_{name}" for name in _DAY_COLUMNS], "next_month_covered_seconds",
                   "next_month_down_seconds"]
_COLUMNS_A_HOUR = len(SUMMARY_COLUMNS) // 2  # then the sparkline's hours


def _average(stats: Stats | None) -> float | None:
    if stats is None or not stats.latency_count:
        return None
    return round(stats.latency_sum / stats.latency_count, 1)


def refresh_summaries(monitor_ids: list[int] | None = None, deadline: datetime | None = None) -> bool:
    """Write the MonitorSummary rows of the last roll-up: of these monitors,
    or of every monitor whose row is older. False when the deadline came
    first (the next run goes on where this one stopped)."""
    done = rolled_up_to()
    if done is None:
        return True
    if monitor_ids is None:
        current = MonitorSummary.objects.filter(rolled_up_to=done).values("monitor_id")
        monitor_ids = list(Monitor.objects.exclude(pk__in=current).order_by("pk").values_list("pk", flat=True))
    for first in range(0, len(monitor_ids), MONITOR_CHUNK):
        _refresh_summaries(monitor_ids[first : first + MONITOR_CHUNK], done)
        if deadline is not None and timezone.now() >= deadline and first + MONITOR_CHUNK < len(monitor_ids):
            return False
    return True


def _refresh_summaries(monitor_ids: list[int], done: datetime) -> None:
    # The rolled-up part of what summaries() shows when `done` is the current
    # hour, and when the hour after it is (before `done`'s hour is rolled up).
    hours_from, days_from = summary_spans(done)
    whole_days_to = floor_to(done, DAY)
    next_days_from = summary_spans(done + HOUR)[1]
    hours = _rollups(monitor_ids, Resolution.HOUR, min(hours_from, whole_days_to), done, None, True)
    months = _sums(monitor_ids, Resolution.DAY, days_from, whole_days_to)
    # The next hour opens a new day once a day: its 30 days start a day later.
    next_months = months if next_days_from == days_from else _sums(monitor_ids, Resolution.DAY, next_days_from,
                                                                   whole_days_to)
    by_monitor: dict[int, dict[datetime, Stats]] = defaultdict(dict)
    for (monitor_id, _, start), stats in hours.items():
        by_monitor[monitor_id][start] = stats
    rows = []
    for pk in monitor_ids:
        mine = by_monitor.get(pk, {})
        day, next_day = Stats(), Stats()
        month = months.get((pk, None), Stats())
        next_month = month if next_months is months else next_months.get((pk, None), Stats())
        points: list = []
        for index in range(SPARK_HOURS - 1):
            stats = mine.get(hours_from + index * HOUR)
            if stats is not None:
                day.add(stats)
                if index:  # the next hour's span starts an hour later
                    next_day.add(stats)
            points.append(None if stats is None else
                          [_average(stats), stats.covered_seconds, stats.down_seconds])
        for start, stats in mine.items():
            if start >= whole_days_to:
                month.add(stats)
                if next_month is not month:
                    next_month.add(stats)
        rows.append(MonitorSummary(
            monitor_id=pk, rolled_up_to=done, **_summary_fields("day_", day), month_covered_seconds=month.covered_seconds,
            month_down_seconds=month.down_seconds, hours=points, **_summary_fields("next_day_", next_day),
            next_month_covered_seconds=next_month.covered_seconds,
            next_month_down_seconds=next_month.down_seconds))
    fields = [f.name for f in MonitorSummary._meta.concrete_fields if not f.primary_key]
    MonitorSummary.objects.bulk_create(rows, update_conflicts=True, unique_fields=["monitor"], update_fields=fields)


def _summary_fields(prefix: str, day: Stats) -> dict:
    values = (day.covered_seconds, day.down_seconds, day.latency_count, day.latency_sum, day.latency_min,
              day.latency_max, pack_histogram(day.histogram))
    return {prefix + name: value for name, value in zip(_DAY_COLUMNS, values)}


def _sums(monitor_ids: list[int], resolution: str, since: datetime, until: datetime) -> dict[tuple[int, None], Stats]:
    """Each monitor's verdict time, covered and down, summed by the database
    (no histograms: uptime needs none)."""
    if since >= until or not monitor_ids:
        return {}
    rows = (Rollup.objects.filter(monitor_id__in=monitor_ids, resolution=resolution, start__gte=since,
                                  start__lt=until, region__isnull=True)
            .values("monitor_id").annotate(covered=Sum("covered_seconds"), down=Sum("down_seconds"))
            .values_list("monitor_id", "covered", "down"))
    return {(pk, None): Stats(covered_seconds=covered or 0.0, down_seconds=down or 0.0) for pk, covered, down in rows}


def series(monitor_id: int, resolution: str, since: datetime, until: datetime, region_ids: list[int] | None = None,
           per_region: bool = True) -> dict[tuple[int | None, datetime], Stats]:
    """One monitor's buckets of `resolution` in [since, until) (since and until
    on bucket boundaries), per region and verdict (only the verdict without
    `per_region`): rollups where they are complete, raw results after."""
    size = {Resolution.MINUTE: MINUTE, Resolution.HOUR: HOUR, Resolution.DAY: DAY}[resolution]
    buckets: dict[tuple[int | None, datetime], Stats] = defaultdict(Stats)
    raw_from = since
    if resolution != Resolution.MINUTE:
        done = rolled_up_to()
        if done is not None and done > since:
            raw_from = min(done, until)
            # Whole days from day rows; the open day from its hours so far.
            hours_from = max(since, floor_to(raw_from, DAY)) if resolution == Resolution.DAY else since
            pieces = [_rollups([monitor_id], resolution, since, hours_from, region_ids, not per_region),
                      _rollups([monitor_id], Resolution.HOUR, hours_from, raw_from, region_ids, not per_region)]
            for piece in pieces:
                for (_, region_id, start), stats in piece.items():
                    buckets[(region_id, floor_to(start, size))].add(stats)
    for (_, region_id, start), stats in sum_raw([monitor_id], raw_from, until, lambda slot: floor_to(slot, size),
                                                region_ids, per_region).items():
        if (region_id, start) in buckets:
            buckets[(region_id, start)].add(stats)
        else:  # most buckets (every minute's): no copy
            buckets[(region_id, start)] = stats
    return buckets


def days(monitor_ids: list[int], since: datetime, until: datetime, latency: bool = True
         ) -> dict[tuple[int, datetime], Stats]:
    """Each monitor's all-regions verdict per (UTC) day in [since, until)
    (day boundaries), keyed (monitor, day), in a fixed number of queries for
    any number of monitors and results: day rollups for complete days, the
    open day's hours, raw results only since the last roll-up (an hour or so).
    Without `latency`, the rolled-up days carry their covered and down time
    only (what uptime needs), summed by the database."""
    out: dict[tuple[int, datetime], Stats] = {}

    def merge(key: tuple[int, datetime], stats: Stats) -> None:
        if key in out:
            out[key].add(stats)
        else:
            out[key] = stats

    raw_from = since
    done = rolled_up_to()
    if done is not None and done > since:
        raw_from = min(done, until)
        hours_from = max(since, floor_to(raw_from, DAY))
        if not latency:
            out.update(_day_sums(monitor_ids, since, hours_from, raw_from))
        else:
            for (monitor_id, _, start), stats in _rollups(monitor_ids, Resolution.DAY, since, hours_from, None,
                                                          True).items():
                out[(monitor_id, start)] = stats
            for (monitor_id, _, start), stats in _rollups(monitor_ids, Resolution.HOUR, hours_from, raw_from,
                                                          None, True).items():
                merge((monitor_id, floor_to(start, DAY)), stats)
    for (monitor_id, region_id, start), stats in sum_raw(monitor_ids, raw_from, until,
                                                         lambda slot: floor_to(slot, DAY)).items():
        if region_id is None:
            merge((monitor_id, start), stats)
    return out


class EpochDay(Func):
    """A timestamp's UTC day as whole days since 1970, computed by the database."""

    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection,
                           template="((%(expressions)s AT TIME ZONE 'UTC')::date - DATE '1970-01-01')", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) / 86400 AS integer)",
                           **extra)


def _day_sums(monitor_ids: list[int], since: datetime, hours_from: datetime, until: datetime
              ) -> dict[tuple[int, datetime], Stats]:
    """Each monitor's verdict covered and down time per UTC day: the day rows
    of [since, hours_from) and the hours of [hours_from, until), summed per day
    by the database in one query and read without converting a timestamp (for
    a page of 200 monitors, parsing 18,000 bucket times through the ORM was
    most of its cost)."""
    if since >= until or not monitor_ids:
        return {}
    rows = (Rollup.objects.filter(monitor_id__in=monitor_ids, region__isnull=True)
            .filter(Q(resolution=Resolution.DAY, start__gte=since, start__lt=hours_from)
                    | Q(resolution=Resolution.HOUR, start__gte=hours_from, start__lt=until))
            .annotate(day=EpochDay(F("start"))).values("monitor_id", "day")
            .annotate(covered=Sum("covered_seconds"), down=Sum("down_seconds")).order_by()
            .values_list("monitor_id", "day", "covered", "down"))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return {(monitor_id, epoch + day * DAY): Stats(covered_seconds=covered, down_seconds=down)
            for monitor_id, day, covered, down in _fetch(rows)}


def window_start(span: timedelta, now: datetime) -> datetime:
    """Where a window of `span` ending `now` starts, as the rolled-up figures
    count it: under a day, the current hour and the whole hours before it;
    a day or more, today (UTC) and the whole days before it."""
    if span < DAY:
        return floor_to(now, HOUR) - span + HOUR
    return floor_to(now, DAY) - span + DAY


def rolled_up_uptime(monitors, windows: dict[str, timedelta], now: datetime | None = None
                     ) -> dict[int, dict[str, float]]:
    """Uptime ratios (0-1) of many monitors (a Monitor queryset) over windows
    ending now, summed by the database from rolled-up rows only: hours for
    spans under a day, else whole (UTC) days and today's hours. One GROUP BY
    query for any number of monitors (/metrics' scrape of 10,000); the last
    hour or so not yet rolled up is left out. A monitor and window without
    covered time is absent."""
    now = now or timezone.now()
    today = floor_to(now, DAY)
    filters, sums = [], {}
    for name, span in windows.items():
        start = window_start(span, now)
        if span < DAY:
            picked = Q(resolution=Resolution.HOUR, start__gte=start)
        else:
            picked = (Q(resolution=Resolution.DAY, start__gte=start, start__lt=today)
                      | Q(resolution=Resolution.HOUR, start__gte=today))
        filters.append(picked)
        sums[f"covered_{name}"] = Sum("covered_seconds", filter=picked)
        sums[f"down_{name}"] = Sum("down_seconds", filter=picked)
    rows = (Rollup.objects.filter(monitor__in=monitors, region__isnull=True)
            .filter(reduce(operator.or_, filters)).values("monitor_id").annotate(**sums).order_by())
    out: dict[int, dict[str, float]] = {}
    for row in rows:
        ratios = {}
        for name in windows:
            covered, down = row[f"covered_{name}"], row[f"down_{name}"]
            if covered:
                ratios[name] = max(0.0, 1 - down / covered)
        out[row["monitor_id"]] = ratios
    return out


def _rollups(monitor_ids: list[int], resolution: str, since: datetime, until: datetime,
             region_ids: list[int] | None, verdict_only: bool = False) -> dict[Key, Stats]:
    if since >= until:
        return {}
    rows = Rollup.objects.filter(monitor_id__in=monitor_ids, resolution=resolution, start__gte=since, start__lt=until)
    if verdict_only:
        rows = rows.filter(region__isnull=True)
    elif region_ids is not None:
        rows = rows.filter(Q(region_id__in=region_ids) | Q(region__isnull=True))
    out: dict[Key, Stats] = {}
    # Plain values, not model instances: a page of monitors reads thousands of buckets.
    for monitor_id, region_id, start, minimum, maximum, histogram, *counts in rows.values_list(
            "monitor_id", "region_id", "start", "latency_min", "latency_max", "histogram", *STAT_FIELDS):
        stats = Stats(*counts, latency_min=minimum, latency_max=maximum,
                      histogram=unpack_histogram(bytes(histogram)))
        key = (monitor_id, region_id, start)
        if key in out:
            out[key].add(stats)
        else:
            out[key] = stats
    return out
