from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from workers import probe_runner


def check(target, monitor: int, slot: datetime, path: str = "/") -> dict:
    return {"monitor": monitor, "slot": slot.isoformat(), "url": target.url(path), "timeout": 2.0,
            "method": "GET", "headers": {}, "body": "", "expected_status": "200-399", "keyword": "",
            "follow_redirects": True}


def run(checks, flush=0.2, max_hold=5.0):
    reports = []
    done, malformed = probe_runner.run_batch(checks, reports.append, flush, max_hold=max_hold)
    return done, malformed, reports


def test_each_check_starts_at_its_slot_not_when_the_batch_arrives(target):
    now = datetime.now(timezone.utc)
    slots = [now + timedelta(seconds=s) for s in (0.0, 0.6, 1.2)]
    done, malformed, reports = run([check(target, i, slot) for i, slot in enumerate(slots)])
    results = {r["monitor"]: r for batch in reports for r in batch}
    assert (done, malformed) == (3, 0)
    for i, slot in enumerate(slots):
        started = datetime.fromisoformat(results[i]["started_at"])
        # Never early; late only by scheduling noise (the slots are 0.6 s apart).
        assert timedelta(0) <= started - slot < timedelta(seconds=0.4), (i, started - slot)


def test_a_node_whose_clock_runs_behind_holds_a_check_no_longer_than_the_cap(target):
    far = datetime.now(timezone.utc) + timedelta(hours=1)
    started = time.monotonic()
    done, _, _ = run([check(target, 1, far)], max_hold=0.3)
    assert done == 1 and time.monotonic() - started < 1.5


def test_results_are_reported_while_a_slow_check_is_still_running(target):
    target.behave("/slow", delay=1.5)
    now = datetime.now(timezone.utc)
    done, _, reports = run([check(target, 1, now, "/slow"), check(target, 2, now, "/fast")], flush=0.2)
    assert done == 2
    # The fast result travelled on its own, before the slow one finished.
    assert [sorted(r["monitor"] for r in batch) for batch in reports] == [[2], [1]]


def test_malformed_checks_are_dropped_and_counted_and_the_rest_run(target):
    now = datetime.now(timezone.utc)
    bad = ["nonsense", {"monitor": "x"}, {"monitor": 1, "slot": "not a time", "url": "http://x/"},
           {"monitor": 2, "slot": now.isoformat()}, {"monitor": 3, "slot": now.isoformat(), "url": "http://x/",
                                                     "headers": "not a dict"}]
    done, malformed, _ = run(bad + [check(target, 9, now)])
    assert (done, malformed) == (1, 5)


def test_a_batch_that_is_not_a_list_is_dropped_whole():
    assert probe_runner.run_batch({"not": "a list"}, lambda r: None, 0.1) == (0, 1)
