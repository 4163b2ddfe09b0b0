"""Runs checks inside a probe node: each in its own greenlet, at its slot.

A probe node is a Celery worker on the gevent pool (the Procfile's `probe`
entry: `--pool gevent`), which monkey-patches the standard library before
anything is imported, so `requests` and `loopr.net` wait on the event loop
instead of blocking a thread. Concurrency is the node's, not the batch's: the
pool holds up to LOOPR_PROBE_CONCURRENCY batches at once, every check of
every batch waits for its slot on a timer and then runs, up to
LOOPR_PROBE_CHECKS at a time in the process, and a batch whose slowest check
hangs until its timeout holds back none of the others. A node that waits
only on its sockets and timers uses no CPU.

Chosen by measurement (BENCHMARKS.md, "Choosing the probe engine"): against
a target answering in 500 ms, 1,000 checks take 1.4 s on greenlets, 2.2 s on
1,000 threads and 8.3 s on 64, and greenlets spend the least CPU per check
whenever checks wait on their targets.

Nothing here touches the database: a probe node holds only the broker URL,
its region and its token. Results go back through the broker.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from datetime import datetime

import gevent
from django.conf import settings
from gevent.event import Event
from gevent.lock import BoundedSemaphore, Semaphore

from monitors.choices import ErrorKind
from monitors.probes import CheckSpec, ProbeResult, run_check
from monitors.wire import SPEC_FIELDS, MalformedCheck, ResultPayload, parse_check, result_payload

log = logging.getLogger(__name__)

_checks_running: BoundedSemaphore | None = None


def checks_running() -> BoundedSemaphore:
    """The node-wide cap on checks in flight (each holds a socket or two)."""
    global _checks_running
    if _checks_running is None:
        _raise_open_files_limit(4 * settings.LOOPR_PROBE_CHECKS + 256)
        _checks_running = BoundedSemaphore(settings.LOOPR_PROBE_CHECKS)
    return _checks_running


class Pacer:
    """Lets checks start only as fast as the event loop keeps up, and no more
    of them be in flight than it can serve.

    Every greenlet shares one thread: a process short of CPU (more checks
    than its core can run, or a core shared with other work) that started
    every due check at once would stretch every check in flight, and targets
    that answered in time would be reported as timeouts. Instead a ticker
    measures how late the loop wakes it and hands out start permits per
    tick, within a limit on checks in flight. While the loop lags, starts
    shrink (down to one a tick), and when it stalls outright (a tick 100 ms
    late) so does the limit (to what is in flight less a quarter); while it
    keeps up both grow again. An overloaded node starts
    checks late (its lag shows it) rather than making up failures; the
    lateness the loop accumulates (`stalled`) lets a check tell a timeout of
    its target from one of its own node (see `_Batch.run`). The ticker
    sleeps while nothing waits to start and nothing is in flight: an idle
    node does not wake.
    """

    TICK = 0.05
    LAGGING = 0.025  # a tick this late means the loop is behind
    MIN_PERMITS, MAX_PERMITS, STEP = 1, 5000, 25
    STALLED = 0.1  # a tick this late means the loop stood still
    MIN_IN_FLIGHT, IN_FLIGHT_STEP = 50, 50

    def __init__(self, max_in_flight: int) -> None:
        self.permits = Semaphore(0)
        self.per_tick = 50
        self.max_in_flight = max_in_flight
        self.allowed = max_in_flight  # checks in flight, adapted to the loop's lag
        self.in_flight = 0
        self.waiting = 0  # checks due and waiting for a permit
        self.stalled = 0.0  # seconds the loop has woken the ticker late, in all
        self.busy = Event()
        self.ticker = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            if not (self.waiting or self.in_flight):
                self.busy.clear()
                self.busy.wait()
            began = time.monotonic()
            gevent.sleep(self.TICK)
            self.tick(time.monotonic() - began - self.TICK)

    def tick(self, late: float) -> None:
        if late > self.LAGGING:
            self.stalled += late
            self.per_tick = max(self.MIN_PERMITS, self.per_tick // 2)
            if late > self.STALLED:
                # Only a real stall shrinks what is in flight: checks waiting
                # on slow targets cost no CPU, and cutting them at every late
                # tick would bound throughput by target latency again.
                self.allowed = max(self.MIN_IN_FLIGHT, min(self.allowed, self.in_flight) * 3 // 4)
        else:
            self.per_tick = min(self.MAX_PERMITS, self.per_tick + self.STEP)
            if self.in_flight + self.waiting > self.allowed // 2:
                self.allowed = min(self.max_in_flight, self.allowed + max(self.IN_FLIGHT_STEP, self.allowed // 4))
        # Unused permits do not pile up into a burst.
        room = min(self.per_tick, self.allowed - self.in_flight, self.waiting) - self.permits.counter
        for _ in range(room):
            self.permits.release()

    def start(self) -> None:
        """Wait for a permit to start a check; `finish` must follow."""
        self.waiting += 1
        self.busy.set()
        try:
            self.permits.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1

    def finish(self) -> None:
        self.in_flight -= 1


_pacer: Pacer | None = None


def pacer() -> Pacer:
    global _pacer
    if _pacer is None:
        _pacer = Pacer(settings.LOOPR_PROBE_CHECKS)
    return _pacer


def _raise_open_files_limit(wanted: int) -> None:
    # Each check holds its socket and the deadline reaper's dup() of it, and a
    # soft limit of 1,024 descriptors is common; the hard limit is ours to use.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("open files limited to %d: fewer than LOOPR_PROBE_CHECKS=%d checks may run at once",
                    hard, settings.LOOPR_PROBE_CHECKS)


# The share of a check's timeout its node's loop may stall before a timeout
# is taken for the node's own.
STARVED_SHARE = 0.25


def _paced_check(spec: CheckSpec, slot_ts: float) -> tuple[ProbeResult, float, float]:
    """Run one check when the pacer allows it: its result, how long the loop
    stalled meanwhile, and how late it started (ms)."""
    paced = pacer()
    paced.start()
    try:
        with checks_running():
            stalled = paced.stalled
            lag_ms = max(0.0, (time.time() - slot_ts) * 1000)
            # run_check never raises: every failure is a classified result.
            outcome = run_check(spec)
            return outcome, paced.stalled - stalled, lag_ms
    finally:
        paced.finish()


def spec_from_payload(raw: object) -> tuple[int, str, CheckSpec]:
    check = parse_check(raw)
    # The node's own target policy: what the central sends cannot widen it.
    return check["monitor"], check["slot"], CheckSpec(**{f: check[f] for f in SPEC_FIELDS if f in check},
                                                      targets=settings.LOOPR_MONITOR_TARGETS)


def slot_time(slot: str) -> float:
    return datetime.fromisoformat(slot).timestamp()


class _Batch:
    """One batch's checks in flight and the results not yet reported."""

    __slots__ = ("pending", "finished", "ready", "all_done")

    def __init__(self, size: int) -> None:
        self.pending = size
        self.finished: list[ResultPayload] = []
        self.ready = Event()  # a result is waiting to be reported
        self.all_done = Event()

    def run(self, monitor: int, slot: str, slot_ts: float, spec: CheckSpec) -> None:
        result = None
        for attempt in range(2):
            outcome, stalled, lag_ms = _paced_check(spec, slot_ts)
            # A timeout during which this node's own loop stood still for a
            # good part of the deadline says more about the node than about
            # the target: the check runs once more (late, and its lag says
            # so). Twice starved, it is reported as from an impaired node:
            # stored, but no region's verdict counts it.
            starved = outcome.error_kind == ErrorKind.TIMEOUT and stalled > STARVED_SHARE * spec.timeout
            result = result_payload(monitor, slot, round(lag_ms, 1), outcome.to_dict())
            if not starved:
                break
            log.info("check of monitor %s timed out while the loop stalled %.1f s; %s", monitor, stalled,
                     "running it again" if attempt == 0 else "reported as impaired")
            if attempt:
                result["impaired"] = True
        self.finished.append(result)
        self.pending -= 1
        self.ready.set()
        if not self.pending:
            self.all_done.set()

    def take(self) -> list[ResultPayload]:
        # No switch to another greenlet can happen between these lines.
        taken, self.finished = self.finished, []
        self.ready.clear()
        return taken


def run_batch(checks: list, report: Callable[[list[ResultPayload]], None], flush_seconds: float,
              max_hold: float = 5.0) -> tuple[int, int]:
    """Run every check at its slot and call `report` with finished results:
    at once when the batch is done, else at most `flush_seconds` after the
    first unreported one finished, so a slow target holds back no other.

    The dispatcher sends checks slightly ahead of their slot; each is started
    when its slot comes, but never held more than `max_hold` seconds, so a
    node whose clock runs behind cannot sit on a batch.

    Returns (checks run, malformed checks dropped) once every result is
    reported: the caller acknowledges the batch only then.
    """
    if not isinstance(checks, list):
        log.error("probe batch dropped: expected a list of checks, got %s", type(checks).__name__)
        return 0, 1
    parsed: list[tuple[int, str, float, CheckSpec]] = []
    malformed = 0
    for check in checks:
        try:
            monitor, slot, spec = spec_from_payload(check)
            parsed.append((monitor, slot, slot_time(slot), spec))
        except (MalformedCheck, ValueError) as exc:
            malformed += 1
            log.warning("malformed check dropped: %s", exc)
    if not parsed:
        return 0, malformed

    batch = _Batch(len(parsed))
    now, latest_start = time.time(), time.time() + max_hold
    for monitor, slot, slot_ts, spec in parsed:
        # A timer per check, not a loop that wakes for each: the hub sleeps
        # until the next slot or socket event.
        gevent.spawn_later(max(0.0, min(slot_ts, latest_start) - now), batch.run, monitor, slot, slot_ts, spec)

    reported = 0
    while reported < len(parsed):
        batch.ready.wait()
        if not batch.all_done.is_set():
            # Let more results join this report, up to the flush period.
            batch.all_done.wait(flush_seconds)
        results = batch.take()
        report(results)
        reported += len(results)
    return reported, malformed
