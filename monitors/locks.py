"""The one order in which Loopr takes row locks, and the helpers that take
the first of them.

    monitor  →  incident  →  notification  →  delivery attempt / channel

Every transaction that locks (or writes, which locks too) rows of more than
one of these tables takes them in this order, and monitors in id order among
themselves. Ingest, the overdue-verdict sweep and the maintenance sync lock the
monitor and then write its incident, status changes and outbox rows; the
reminder sweep therefore locks the monitor too before it looks at the
incident, never the incident first. Nothing locks an incident without holding
its monitor: the monitor's lock is what serialises everything that happens to
its incidents. Delivery locks a notification alone and then writes its attempts
and, on a 410, its channel.

Inserting a row takes a share lock on each row it references (PostgreSQL's
foreign-key check), so a notification written for an incident counts as
touching the incident: that is why the order covers writes, not just
SELECT … FOR UPDATE. Missed records (`monitors/missed.py`) are result rows
written without the monitor's lock: they are inserted in monitor id order, so
their share locks queue behind ingest's monitor locks instead of crossing them.
"""

from __future__ import annotations

from collections.abc import Iterable

from .models import Monitor


def lock_monitors(ids: Iterable[int], fields: Iterable[str] | None = None) -> dict[int, Monitor]:
    # In id order, so that two transactions locking overlapping sets queue
    # behind each other instead of each holding what the other wants.
    locked = Monitor.objects.select_for_update().filter(pk__in=set(ids)).order_by("pk")
    if fields is not None:
        locked = locked.only(*fields)
    return {monitor.pk: monitor for monitor in locked}


def lock_monitor(pk: int, **conditions) -> Monitor | None:
    """The monitor, locked, if it still exists and meets `conditions`."""
    return Monitor.objects.select_for_update(of=("self",)).filter(pk=pk, **conditions).first()
