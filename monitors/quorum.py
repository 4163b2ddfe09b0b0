"""The region vote: one slot's reports from several regions, counted against
the monitor's quorum, make the one `Check` the state machine judges.

Plain data in, plain data out, no database: the vote is tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict


@dataclass(frozen=True)
class Check:
    """One check's outcome as the state machine sees it."""

    ok: bool
    slot: datetime
    checked_at: datetime
    latency_ms: float | None = None
    error_kind: str = ""
    error: str = ""
    region: str = ""
    # Regions that saw a failure too few to reach the quorum: a regional outage.
    failing_regions: tuple[str, ...] = ()
    region_errors: dict | None = None


class RegionReport(TypedDict):
    """A region's latest result of one monitor, as `Monitor.region_results` keeps it."""

    slot: str  # ISO-8601
    at: str  # when the check ran, ISO-8601
    ok: bool
    kind: str
    error: str
    latency: float | None
    impaired: bool


class RegionVote:
    """Failing in `quorum` regions (by default a majority of those counted)
    is a failure; failing in fewer is a success that names the regions, a
    regional outage."""

    def __init__(self, slot: datetime, reports: Mapping[str, RegionReport], quorum: int | None) -> None:
        self.slot = slot
        self.reports = reports
        self.quorum = quorum
        # An impaired node's vantage point is broken: its failures say nothing.
        self.counted = {region: r for region, r in reports.items() if not r["impaired"]}

    def verdict(self) -> Check | None:
        """The slot's combined check; None when no report counts."""
        if not self.counted:
            return None
        failing = sorted(region for region, r in self.counted.items() if not r["ok"])
        kind, error = self._error(failing)
        vote = {
            "slot": self.slot, "checked_at": self.checked_at(), "error_kind": kind, "error": error,
            "region": ",".join(failing), "failing_regions": tuple(failing),
            "region_errors": {region: self.counted[region]["error"] for region in failing},
        }
        if len(failing) >= self.needed():
            return Check(ok=False, **vote)
        return Check(ok=True, latency_ms=self.slowest_success(), **vote)

    def needed(self) -> int:
        return min(self.quorum or len(self.counted) // 2 + 1, len(self.counted))

    def checked_at(self) -> datetime:
        return max(datetime.fromisoformat(r["at"]) for r in self.reports.values())

    def slowest_success(self) -> float | None:
        latencies = [r["latency"] for r in self.counted.values() if r["ok"] and r["latency"] is not None]
        return max(latencies) if latencies else None

    def _error(self, failing: list[str]) -> tuple[str, str]:
        # The first failing region's kind; its error alone when it is the
        # only region, else every failing region's, named.
        if not failing:
            return "", ""
        first = self.counted[failing[0]]
        if len(self.counted) == 1:
            return first["kind"], first["error"]
        return first["kind"], "; ".join(f"{region}: {self.counted[region]['error']}" for region in failing)
