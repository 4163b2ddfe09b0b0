"""The region vote on its own: reports in, one check out, no database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from monitors.quorum import RegionReport, RegionVote

SLOT = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def report(ok: bool, error: str = "", latency: float | None = 20.0, impaired: bool = False,
           after: float = 1.0) -> RegionReport:
    return {"slot": SLOT.isoformat(), "at": (SLOT + timedelta(seconds=after)).isoformat(), "ok": ok,
            "kind": "ok" if ok else "status", "error": error, "latency": latency, "impaired": impaired}


def test_a_majority_failing_is_a_failure_naming_each_regions_error():
    check = RegionVote(SLOT, {"eu": report(False, "HTTP 503"), "us": report(False, "timed out"),
                              "ap": report(True)}, quorum=None).verdict()
    # Two of three is the default majority.
    assert not check.ok and check.failing_regions == ("eu", "us")
    assert check.error == "eu: HTTP 503; us: timed out" and check.error_kind == "status"
    assert check.region_errors == {"eu": "HTTP 503", "us": "timed out"}


def test_a_minority_failing_is_a_success_that_names_the_regional_outage():
    check = RegionVote(SLOT, {"eu": report(False, "refused"), "us": report(True, latency=30.0),
                              "ap": report(True, latency=80.0)}, quorum=None).verdict()
    assert check.ok and check.failing_regions == ("eu",) and check.error == "eu: refused"
    # The slowest answering region is the latency that counts.
    assert check.latency_ms == 80.0


def test_an_explicit_quorum_overrides_the_majority_but_never_exceeds_the_regions_counted():
    reports = {"eu": report(False, "refused"), "us": report(True), "ap": report(True)}
    assert not RegionVote(SLOT, reports, quorum=1).verdict().ok
    # A quorum of five with three regions counted: all three must fail.
    assert RegionVote(SLOT, reports, quorum=5).needed() == 3


def test_impaired_reports_do_not_count_and_alone_give_no_verdict():
    assert RegionVote(SLOT, {"eu": report(False, impaired=True)}, quorum=None).verdict() is None
    check = RegionVote(SLOT, {"eu": report(False, impaired=True), "us": report(True)}, quorum=None).verdict()
    assert check.ok and check.failing_regions == ()


def test_a_single_region_failure_carries_its_error_unprefixed_and_the_latest_check_time():
    check = RegionVote(SLOT, {"eu": report(False, "HTTP 503", after=3.0)}, quorum=None).verdict()
    assert not check.ok and check.error == "HTTP 503" and check.region == "eu"
    assert check.checked_at == SLOT + timedelta(seconds=3)
