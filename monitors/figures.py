"""Uptime figures that many requests read and only a roll-up changes, kept
ready in the shared cache (loopr/cache.py) by the central worker after each
roll-up (`refresh`), so that no request sums rollups:

- every monitor's uptime ratios over 24 h, 7 d and 30 d, which /metrics
  exports for up to every monitor at each scrape (summing them was a GROUP BY
  over 630,000 rollup rows for 10,000 monitors);
- for a monitor whose badge was asked for, the rolled-up part of each badge
  window (uptime and the latency histogram); a badge adds only the raw
  results since that roll-up.

Windows start where `rollups.window_start` says, as the monitor list's
and `rollups.rolled_up_uptime`'s do.
Either is recomputed when a roll-up moved `rolled_up_to` or the hour turned;
a request that finds nothing (a new install, a cache lost) computes it and
keeps it. Late results re-summed into an hour already rolled up show from the
next recomputation.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from . import rollups
from .models import Monitor

RATIO_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
BADGE_WINDOWS = {**RATIO_WINDOWS, "90d": timedelta(days=90)}
RATIOS_KEY = "loopr:figures:uptime-ratios"
BADGED_KEY = "loopr:figures:badged"  # {monitor id: when its badge figures were last computed on request}
# Kept this long past their hour: if the worker stops, requests are served
# an hour or two behind before they compute their own.
KEEP = 3 * 3600
# A monitor whose badge was not asked for since this long ago is no longer
# kept ready (its next badge computes its own, and so registers again).
BADGED_FOR = timedelta(days=1)


def basis(now: datetime) -> tuple[datetime | None, datetime]:
    """What the figures of `now` depend on: the last roll-up and the hour."""
    return rollups.rolled_up_to(), rollups.floor_to(now, rollups.HOUR)


# --- /metrics' ratios -----------------------------------------------------------------


def uptime_ratios(now: datetime | None = None) -> dict[int, dict[str, float]]:
    """Every monitor's uptime ratios (0-1) by window name, to the last
    roll-up; a monitor and window without covered time is absent."""
    kept = cache.get(RATIOS_KEY)
    if kept is None:
        kept = _refresh_ratios(now or timezone.now())
    return kept["ratios"]


def _refresh_ratios(now: datetime, current: tuple | None = None) -> dict:
    kept = {"basis": current or basis(now),
            "ratios": rollups.rolled_up_uptime(Monitor.objects.all(), RATIO_WINDOWS, now)}
    cache.set(RATIOS_KEY, kept, KEEP)
    return kept


# --- badges ---------------------------------------------------------------------------


def badge_stats(monitor_id: int, window: str, now: datetime | None = None) -> rollups.Stats:
    """The monitor's all-regions sums over the badge window: its rolled-up
    part as kept (computed here, and the monitor registered to be kept
    ready, if it is missing or of another hour), plus the raw results since
    that roll-up."""
    now = now or timezone.now()
    hour = rollups.floor_to(now, rollups.HOUR)
    kept = cache.get(_badge_key(monitor_id))
    if kept is None or kept["basis"][1] != hour:
        kept = _refresh_badge(monitor_id, basis(now), now)
        _register(monitor_id, now)
    start = rollups.window_start(BADGE_WINDOWS[window], now)
    done = kept["basis"][0]
    stats = rollups.Stats()
    stats.add(kept["windows"][window])
    raw_from = start if done is None else max(done, start)
    for (_, region_id, _), raw in rollups.sum_raw([monitor_id], raw_from, now, lambda slot: start,
                                                   per_region=False).items():
        if region_id is None:
            stats.add(raw)
    return stats


def _badge_key(monitor_id: int) -> str:
    return f"loopr:figures:badge:{monitor_id}"


def _refresh_badge(monitor_id: int, current: tuple, now: datetime) -> dict:
    done = current[0]
    windows = {}
    for name, span in BADGE_WINDOWS.items():
        start = rollups.window_start(span, now)
        stats = rollups.Stats()
        if done is not None and done > start:
            # Rollups only: [start, done) lies on hour boundaries, so no raw edge is read.
            stats = rollups.window([monitor_id], start, done).get((monitor_id, None), stats)
        windows[name] = stats
    kept = {"basis": current, "windows": windows}
    cache.set(_badge_key(monitor_id), kept, KEEP)
    return kept


def _register(monitor_id: int, now: datetime) -> None:
    # Read, change, write: two web processes registering at once may lose
    # one, which then computes its own once more and registers again.
    badged = cache.get(BADGED_KEY) or {}
    badged[monitor_id] = now
    cache.set(BADGED_KEY, badged, None)


# --- the worker -----------------------------------------------------------------------


def refresh(now: datetime | None = None) -> int:
    """After a roll-up: recompute what is kept if its roll-up or hour has
    passed. Returns how many monitors' figures were recomputed."""
    now = now or timezone.now()
    current = basis(now)
    kept = cache.get(RATIOS_KEY)
    if kept is not None and kept["basis"] == current:
        return 0
    computed = len(_refresh_ratios(now, current)["ratios"])
    badged = {pk: at for pk, at in (cache.get(BADGED_KEY) or {}).items() if now - at < BADGED_FOR}
    alive = set(Monitor.objects.filter(pk__in=list(badged)).values_list("pk", flat=True))
    for pk in sorted(alive):
        _refresh_badge(pk, current, now)
    cache.set(BADGED_KEY, {pk: at for pk, at in badged.items() if pk in alive}, None)
    return computed + len(alive)
