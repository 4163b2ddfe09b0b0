"""Runs a batch of checks concurrently inside a probe node.

Nothing here touches the database: a probe node holds only the broker URL,
its region and (later) its token. Results go back through the broker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable

from django.conf import settings

from monitors.probes import CheckSpec, run_check

log = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_pid: int | None = None
_lock = threading.Lock()

SPEC_FIELDS = ("url", "timeout", "method", "headers", "body", "expected_status", "keyword", "follow_redirects")


class MalformedCheck(ValueError):
    pass


def executor() -> ThreadPoolExecutor:
    # One pool per process, made after the prefork pool forks its children
    # (threads do not survive a fork).
    global _executor, _executor_pid
    with _lock:
        if _executor is None or _executor_pid != os.getpid():
            _executor = ThreadPoolExecutor(settings.LOOPR_PROBE_THREADS, thread_name_prefix="probe")
            _executor_pid = os.getpid()
        return _executor


def spec_from_payload(check: object) -> tuple[int, str, CheckSpec]:
    if not isinstance(check, dict):
        raise MalformedCheck(f"a check must be an object, got {type(check).__name__}")
    try:
        monitor, slot = check["monitor"], check["slot"]
        kwargs = {f: check[f] for f in SPEC_FIELDS if f in check}
        if not isinstance(monitor, int) or not isinstance(slot, str) or "url" not in kwargs:
            raise MalformedCheck("monitor (int), slot (str) and url are required")
        kwargs["timeout"] = float(kwargs.get("timeout", 10))
        if not isinstance(kwargs.get("headers", {}), dict):
            raise MalformedCheck("headers must be an object")
        return monitor, slot, CheckSpec(**kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, MalformedCheck):
            raise
        raise MalformedCheck(f"{type(exc).__name__}: {exc}") from exc


def _run_one(monitor: int, slot: str, spec: CheckSpec) -> dict:
    result = run_check(spec).to_dict()
    result["monitor"] = monitor
    result["slot"] = slot
    return result


def run_batch(checks: list, report: Callable[[list[dict]], None], flush_seconds: float) -> tuple[int, int]:
    """Run every check, calling `report` with finished results at least every
    `flush_seconds`, so a slow target does not hold back the others.

    Returns (checks run, malformed checks dropped).
    """
    if not isinstance(checks, list):
        log.error("probe batch dropped: expected a list of checks, got %s", type(checks).__name__)
        return 0, 1
    pool = executor()
    pending: set[Future] = set()
    malformed = 0
    for check in checks:
        try:
            monitor, slot, spec = spec_from_payload(check)
        except MalformedCheck as exc:
            malformed += 1
            log.warning("malformed check dropped: %s", exc)
            continue
        pending.add(pool.submit(_run_one, monitor, slot, spec))
    done_count = 0
    finished: list[dict] = []
    last_flush = time.monotonic()
    while pending:
        done, pending = wait(pending, timeout=max(0.0, last_flush + flush_seconds - time.monotonic()),
                             return_when=FIRST_COMPLETED)
        for future in done:
            finished.append(future.result())
        if finished and (not pending or time.monotonic() - last_flush >= flush_seconds):
            report(finished)
            done_count += len(finished)
            finished = []
            last_flush = time.monotonic()
    return done_count, malformed
