"""What a probe node knows about itself: its counters, its canary, its token.

Counters and the impaired flag live in shared memory made at import, i.e. in
the worker's main process before the prefork pool forks: the children that run
batches write them, the main process's heartbeat thread reads them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading

from django.conf import settings

log = logging.getLogger(__name__)

_checks = multiprocessing.Value("Q", 0)
_failures = multiprocessing.Value("Q", 0)
_lag_ms_total = multiprocessing.Value("d", 0.0)
_impaired = multiprocessing.Value("b", 0, lock=False)


def token() -> str:
    return os.environ.get("LOOPR_NODE_TOKEN", "")


def is_impaired() -> bool:
    return bool(_impaired.value)


def count(checks: int, failures: int, lag_ms_total: float) -> None:
    with _checks.get_lock():
        _checks.value += checks
    with _failures.get_lock():
        _failures.value += failures
    with _lag_ms_total.get_lock():
        _lag_ms_total.value += lag_ms_total


def counters() -> dict:
    checks = _checks.value
    return {
        "checks_done": checks,
        "failures": _failures.value,
        "mean_lag_ms": round(_lag_ms_total.value / checks, 1) if checks else None,
    }


class Canary:
    """Checks the operator's canary URL; while it fails, this vantage point is
    impaired and its failures must not count toward a verdict."""

    def __init__(self, url: str, interval: float, failures_to_impair: int = 2):
        self.url, self.interval, self.failures_to_impair = url, interval, failures_to_impair
        self.consecutive_failures = 0
        self.error = ""

    def check_once(self) -> None:
        from monitors.probes import CheckSpec, run_check

        result = run_check(CheckSpec(url=self.url, timeout=min(5.0, self.interval)))
        if result.ok:
            self.consecutive_failures, self.error = 0, ""
        else:
            self.consecutive_failures += 1
            self.error = f"canary {self.url}: {result.error}"
        impaired = self.consecutive_failures >= self.failures_to_impair
        if impaired != is_impaired():
            log.warning("node is %s: %s", "impaired" if impaired else "healthy again", self.error or "canary ok")
        _impaired.value = 1 if impaired else 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.check_once()
            except Exception:  # the canary must never take the node down
                log.exception("canary check failed to run")
            stop.wait(self.interval)


def canary() -> Canary | None:
    url = settings.LOOPR_CANARY_URL
    return Canary(url, settings.LOOPR_CANARY_INTERVAL) if url else None
