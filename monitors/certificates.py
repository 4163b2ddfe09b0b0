"""TLS certificate expiry alerts: when the served certificate comes within
one of a monitor's `tls_expiry_alert_days`, its channels are told once
(`tls_expiring`), through the same outbox as every other alert.

Run by ingest inside its transaction, with the monitor locked: the record of
what was alerted (`tls_alerted_expiry`, `tls_alerted_days`) and the outbox rows
commit together, so an alert is neither repeated by the next check nor lost
to a restart.
"""

from __future__ import annotations

import math
from datetime import datetime

from .announcements import announced
from .choices import Event
from .models import Monitor
from .wire import Result


def alert_expiring_certificates(monitors: dict[int, Monitor], inserted: list[Result], now: datetime) -> int:
    """Judge each monitor's newest certificate seen in `inserted`; returns
    the number of alerts written."""
    newest: dict[int, Result] = {}
    for row in inserted:
        if row["tls_expires_at"] is None:
            continue
        seen = newest.get(row["monitor_id"])
        if seen is None or row["checked_at"] > seen["checked_at"]:
            newest[row["monitor_id"]] = row
    alerts = 0
    for monitor_id, row in newest.items():
        alerts += note_certificate(monitors[monitor_id], row["tls_expires_at"], now)
    return alerts


def note_certificate(monitor: Monitor, expires_at: datetime, now: datetime) -> int:
    recorded = (monitor.tls_alerted_expiry, monitor.tls_alerted_days)
    threshold = monitor.tls_threshold_crossed(expires_at, now)
    if (monitor.tls_alerted_expiry, monitor.tls_alerted_days) != recorded:
        Monitor.objects.filter(pk=monitor.pk).update(tls_alerted_expiry=monitor.tls_alerted_expiry,
                                                    tls_alerted_days=monitor.tls_alerted_days)
    if threshold is None:
        return 0
    announced.send(Monitor, monitor=monitor, event=Event.TLS_EXPIRING, incident=None, degraded_only=False,
                   details=expiry_details(expires_at, now, threshold), at=now)
    return 1


def expiry_details(expires_at: datetime, now: datetime, threshold: int) -> str:
    days_left = max(0, math.floor((expires_at - now).total_seconds() / 86400))
    when = expires_at.strftime("%Y-%m-%d %H:%M UTC")
    if expires_at <= now:
        return f"the TLS certificate expired on {when} (days_left 0; alert threshold {threshold} days)"
    return (f"the TLS certificate expires on {when}, in {days_left} day{'s' if days_left != 1 else ''} "
            f"(days_left {days_left}; alert threshold {threshold} days)")
