"""Fault injection: each of Loopr's processes SIGKILLed, its Redis killed
with kill -9 and its PostgreSQL stopped with `-m immediate`, each while the
target flips between 200 and 500, on a stack of its own (harness.py); then,
from the database, for the scenario's window:

- every due (monitor, region, slot) has exactly one result or one missed
  record, and none of anything else (no second row, no slot off the grid);
- every state change to or from down has its notification, delivered to the
  receiver, and no event went out under two ids;
- /healthz went 503 during the outage (where the outage is the central's)
  and is 200 again after it;
- the other processes lived through it (each reconnects by itself).

Marker `fault` (`python3 dev.py test -m fault`); part of the normal run and
of `.ci/run`. The whole suite takes a few minutes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import pytest

from tests.support.processes import procfile_entries

from .harness import Stack, alert_ledger, is_probe, now_utc, slot_ledger, wait

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

# Normal running before the fault, inside the window.
BEFORE = 4.0
# Normal running after recovery, inside the window.
AFTER = 6.0
# How long the window's slots and alerts may take to be accounted for after
# it closes. Generous against what the defaults promise: a slot without a
# result is re-dispatched at its verdict deadline (timeout + 5 s), a lost
# notification task is re-queued by the sweep after 30 s.
SETTLE = 60.0
# How long the stack may take to be healthy again once the fault is repaired.
RECOVERY = 60.0
# A dead dispatcher shows on /healthz once its last tick is older than
# LOOPR_HEALTH_DISPATCH_STALE (default 10 s), a dead central worker once its
# last notification sweep (every 5 s) is older than LOOPR_HEALTH_CENTRAL_STALE
# (default 15 s): an outage of a central process must outlast both for the
# check to be able to see it.
PROCESS_OUTAGE = 22.0
# The broker and the database fail /healthz at once; long enough for
# several flushes of results, heartbeats and ticks to fail meanwhile.
SERVICE_OUTAGE = 8.0
# The probe node: long enough that its region is judged dead (3 heartbeats).
PROBE_OUTAGE = 8.0
# Before the fault nothing went wrong, so no slot there may be "missed"; a
# probe node killed at t had run checks up to a flush (1 s) before t whose
# results it still held, and those may end up missed.
MISSED_MARGIN = timedelta(seconds=3)


@dataclass
class Fault:
    name: str
    inject: Callable[[Stack], None]
    restore: Callable[[Stack], None]
    outage: float
    # /healthz judges the central's work: a probe node's death is its
    # region's business (and a node's canary must not point at /healthz).
    central: bool
    process: str | None = None


def killed(name: str) -> Fault:
    return Fault(f"SIGKILL {name}", lambda s: s.kill(name), lambda s: s.start(name),
                 PROBE_OUTAGE if is_probe(name) else PROCESS_OUTAGE, central=not is_probe(name), process=name)


# Every Procfile process but the web (which answers /healthz), so a
# `dispatcher` entry is killed too once it exists.
FAULTS = [killed(name) for name in procfile_entries() if name != "web"] + [
    Fault("Redis kill -9 and restart", lambda s: s.redis.kill(), lambda s: s.redis.start(), SERVICE_OUTAGE,
          central=True),
    Fault("PostgreSQL immediate stop and restart", lambda s: s.pg.stop_immediate(), lambda s: s.pg.start(),
          SERVICE_OUTAGE, central=True),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_it_accounts_for_every_slot_and_tells_every_state_change_through_a_fault(stack: Stack, fault: Fault):
    if stack.ensure_running():
        wait(stack.healthy, 60, "/healthz 200 after restarting what an earlier scenario left dead", stack)
    exits = len(stack.exits)
    start = now_utc()
    time.sleep(BEFORE)

    fault_at, fault_t = now_utc(), time.time()
    fault.inject(stack)
    time.sleep(fault.outage)
    fault.restore(stack)
    restored_at, restored_t = now_utc(), time.time()
    wait(lambda: stack.healthy() and stack.region_live(), RECOVERY,
         f"/healthz 200 and a live region after {fault.name}", stack)
    time.sleep(AFTER)
    end = now_utc()

    # Let the window's last slots and alerts arrive, and what the fault
    # delayed be redelivered, re-dispatched or recorded as missed.
    deadline = time.monotonic() + SETTLE
    while True:
        slots = slot_ledger(stack, start, end, missed_from=fault_at - MISSED_MARGIN, resumed_after=restored_at)
        alerts = alert_ledger(stack, start, end)
        if (not slots.lost and not alerts.untold) or time.monotonic() > deadline:
            break
        time.sleep(2)
    settled = time.monotonic() - (deadline - SETTLE)
    figures = f"{fault.name}: {slots.summary()}; {alerts.summary()}; settled in {settled:.0f} s"
    print(figures)

    # Every due slot has exactly one result or one missed record.
    assert not slots.lost, f"{figures}; lost e.g. {[(m, f'{at:%H:%M:%S.%f}') for m, at in slots.lost[:10]]}"
    assert not slots.extra, f"{figures}; extra rows e.g. {slots.extra[:10]}"
    # A missed record says why, is neither up nor down, and only where the fault was.
    assert not slots.bad_missed, f"{figures}; e.g. {slots.bad_missed[:10]}"
    # Checks resumed for every monitor once the fault was repaired.
    assert not slots.not_resumed, f"{figures}; no result after recovery for monitors {slots.not_resumed[:20]}"
    # The target flipped throughout: there were state changes to tell...
    assert alerts.expected > 0, figures
    # ...and every one was told, under one id.
    assert not alerts.untold, f"{figures}; e.g. {alerts.untold[:10]}"
    assert not alerts.two_ids, f"{figures}; e.g. {alerts.two_ids[:10]}"
    assert not stack.receiver.refused, f"signatures refused: {stack.receiver.refused[:5]}"

    # /healthz is healthy again...
    latest = stack.health.between(time.time() - 5, time.time())
    assert latest and all(r.status == 200 for r in latest), [(r.status, r.body) for r in latest]
    known: list[str] = []
    # ...and saw the outage.
    during = stack.health.between(fault_t, restored_t + 2)
    if fault.central and not any(r.status == 503 for r in during):
        failure = f"/healthz never said 503 during {fault.name}: {sorted({(r.status, r.body) for r in during})[:5]}"
        fail(failure)

    # Every process lived through it: none exited by itself (the harness
    # restarted any that did, as a deployment would, so that the figures
    # above are what production would see).
    for gone in stack.exits[exits:]:
        failure = (f"during {fault.name}: {gone.name} (pid {gone.pid}) exited with status {gone.status} at "
                   f"{time.strftime('%H:%M:%S', time.gmtime(gone.at))} UTC (its log says why, above)")
        log = stack.log_since_test(gone.name)
        gap = next((gap for who, line, gap in KNOWN_EXITS if who(gone.name) and line in log), None)
        known.append(known_gap(gap, failure) if gap else fail(failure))
    if known:
        pytest.xfail(f"{figures} | " + " | ".join(known))


# --- Known gaps in the code under test ----------------------------------------------------
# Each is reported as XFAIL with its figures (pytest -ra prints the reason),
# and only when every other assertion of the scenario held: a scenario that
# also fails anything else fails. LOOPR_FAULT_STRICT=1 makes them failures
# (to check a fix). Remove an entry once its cause is fixed.

# Which process, the line in its log that identifies the crash, and the gap.
# (The last entry, a worker ending on kombu's AttributeError when Redis came
# back, is fixed in loopr/broker.py; none is known now.)
KNOWN_EXITS: list[tuple] = []


def known_gap(gap: str, failure: str) -> str:
    if os.environ.get("LOOPR_FAULT_STRICT") == "1":
        fail(failure)
    return f"{gap} [{failure}]"


def fail(message: str) -> str:
    pytest.fail(message, pytrace=False)
