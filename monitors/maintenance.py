"""The maintenance sync: moves monitors in and out of maintenance as their
windows start and end (`windows.py` says when that is), and announces what
happened meanwhile when a window ends."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .locks import lock_monitor
from .models import MaintenanceWindow, Monitor
from .state import announce


def sync_maintenance(now: datetime | None = None) -> tuple[int, int]:
    """Flag the monitors of active windows; when a window ends, whatever
    happened meanwhile is announced (a target still down alerts then)."""
    now = now or timezone.now()
    active: set[int] = set()
    for window in MaintenanceWindow.objects.prefetch_related("monitors"):
        if window.active_at(now):
            active.update(m.pk for m in window.monitors.all())
    entering = list(Monitor.objects.filter(in_maintenance=False, pk__in=active).values_list("pk", flat=True))
    leaving = list(Monitor.objects.filter(in_maintenance=True).exclude(pk__in=active).values_list("pk", flat=True))
    for pk in entering + leaving:
        with transaction.atomic():
            # Claimed by a conditional update: of two overlapping syncs (the
            # periodic one, one run by a save) only one moves each monitor and
            # announces, even on SQLite, which has no row locks.
            entered = pk in active
            if not Monitor.objects.filter(pk=pk, in_maintenance=not entered).update(in_maintenance=entered):
                continue
            monitor = lock_monitor(pk)  # the update above holds it already; the lock order, monitors/locks.py
            monitor.refresh_status(now)
            announce(monitor, now)  # before saving: it records what was told
            monitor.save()
    return len(entering), len(leaving)
