"""When the central loops last did their work: each dispatch tick and each
ingest leaves a timestamp in the broker, and `/healthz` judges its age.

In Redis rather than the database: every tick and every ingest talks to the
broker already, a SET costs tens of microseconds, and a dead database must not
hide a dead beat.
"""

from __future__ import annotations

import logging
import time

from loopr.celery import app

log = logging.getLogger(__name__)

DISPATCH = "dispatch"
# A dispatch tick that found a live region (while none is, ticks claim nothing).
DISPATCH_SERVED = "dispatch_served"
INGEST = "ingest"
# The central worker's notification sweep (every 5 s, on its `central` queue):
# stale, and no alert is sent again, no reminder goes out — the worker is gone.
CENTRAL = "central"
KEY_PREFIX = "loopr:freshness:"
# Ingest runs many tasks a second; an age read in seconds needs one write a
# second from each process, not one per task.
MIN_GAP = 1.0

_written_at: dict[str, float] = {}


def key(component: str) -> str:
    return KEY_PREFIX + component


def mark(component: str) -> None:
    """Record that `component` did its work just now (at most once a second)."""
    now = time.time()
    if now - _written_at.get(component, 0.0) < MIN_GAP:
        return
    try:
        record(component, now)
    except Exception:
        # The bookkeeping must never fail the work it reports on; a missed
        # mark shows as an older age, which is the truth about the broker.
        log.warning("could not record when %s last ran", component, exc_info=True)
        return
    _written_at[component] = now


def record(component: str, at: float) -> None:
    with app.connection_or_acquire() as conn:
        conn.default_channel.client.set(key(component), repr(at))


def read(client, *components: str) -> list[float | None]:
    """When each component last ran, through the caller's broker client."""
    return [parse(raw) for raw in client.mget([key(c) for c in components])]


def parse(raw: bytes | str | None) -> float | None:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None
