"""Running totals an operator reads on `/healthz?verbose=1` (missed slots by
reason, rows the database refused): counters in the broker's Redis, like the
freshness marks, so counting costs one INCRBY and never a table scan.

Totals since the broker's data was last lost; a failed count is logged and
never fails the work it counts.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from loopr.celery import app

log = logging.getLogger(__name__)

KEY = "loopr:tallies"
# Each monitor's stored checks, "<monitor id>:ok" and "<monitor id>:failed"
# (/metrics' loopr_monitor_checks_total: a counter, so a loss of the broker's
# data reads to Prometheus as the reset it is).
CHECKS = "loopr:checks"


def add(counts: dict[str, int], key: str = KEY) -> None:
    counts = {name: n for name, n in counts.items() if n}
    if not counts:
        return
    try:
        with app.connection_or_acquire() as conn:
            pipe = conn.default_channel.client.pipeline(transaction=False)
            for name, n in counts.items():
                pipe.hincrby(key, name, n)
            pipe.execute()
    except Exception:
        log.warning("could not count %s", counts, exc_info=True)


def check_field(monitor_id: int, ok: bool) -> str:
    """The field of CHECKS that counts a monitor's stored checks of one outcome."""
    return f"{monitor_id}:{'ok' if ok else 'failed'}"


def count_checks(checks: Iterable[tuple[int, bool]]) -> None:
    """Stored checks (monitor id, ok) added to their monitors' totals."""
    add(Counter(check_field(monitor_id, ok) for monitor_id, ok in checks), key=CHECKS)


def parse(raw: dict | None) -> dict[str, int]:
    out = {}
    for name, value in (raw or {}).items():
        name = name.decode() if isinstance(name, bytes) else str(name)
        try:
            out[name] = int(value)
        except (TypeError, ValueError):
            continue
    return dict(sorted(out.items()))
