from __future__ import annotations

from django.db import models


class MonitorStatus(models.TextChoices):
    """What a monitor shows: its health, unless paused or in maintenance."""

    PENDING = "pending", "Pending"
    UP = "up", "Up"
    DEGRADED = "degraded", "Degraded"
    DOWN = "down", "Down"
    PAUSED = "paused", "Paused"
    MAINTENANCE = "maintenance", "Maintenance"

    @property
    def color(self) -> str:
        return MONITOR_STATUS_COLORS[self]


# Each status's colour wherever it is shown (the admin), kept with the
# choice as NetBox does, so that "down" is the same red on every page.
MONITOR_STATUS_COLORS = {
    MonitorStatus.DOWN: "#c62828",
    MonitorStatus.DEGRADED: "#ef6c00",
    MonitorStatus.MAINTENANCE: "#1565c0",
    MonitorStatus.UP: "#2e7d32",
    MonitorStatus.PAUSED: "#616161",
    MonitorStatus.PENDING: "#9e9e9e",
}


def uptime_status(percent: float | None) -> MonitorStatus | None:
    """How a span's uptime is shown (a day's bar, wherever one is drawn):
    up at 100 %, degraded from 99 %, down below; None for no data."""
    if percent is None:
        return None
    if percent >= 100:
        return MonitorStatus.UP
    return MonitorStatus.DEGRADED if percent >= 99 else MonitorStatus.DOWN


class Health(models.TextChoices):
    """The verdict of the checks alone."""

    PENDING = "pending", "Pending"
    UP = "up", "Up"
    DEGRADED = "degraded", "Degraded"
    DOWN = "down", "Down"


class MonitorKind(models.TextChoices):
    """How a monitor is checked. Every kind but `heartbeat` is probed from the
    regions; a heartbeat is pinged by its target instead."""

    HTTP = "http", "HTTP(S)"
    TCP = "tcp", "TCP port"
    DNS = "dns", "DNS record"
    ICMP = "icmp", "ICMP ping"
    HEARTBEAT = "heartbeat", "Heartbeat (push / cron)"


# The kind a URL's scheme means, for monitors created without one.
KIND_OF_SCHEME = {
    "http": MonitorKind.HTTP,
    "https": MonitorKind.HTTP,
    "tcp": MonitorKind.TCP,
    "dns": MonitorKind.DNS,
    "icmp": MonitorKind.ICMP,
}


class PingKind(models.TextChoices):
    """What a heartbeat's ping says (Healthchecks' grammar: /ping/<uuid>[/…])."""

    SUCCESS = "success", "Success"
    START = "start", "Run started"
    FAIL = "fail", "Failure"
    EXIT = "exit", "Exit status"
    LOG = "log", "Log (no state change)"


class HttpMethod(models.TextChoices):
    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"


class ErrorKind(models.TextChoices):
    """How a check ended. `ok` is the only success."""

    OK = "ok", "OK"
    DNS = "dns", "DNS lookup failed"
    REFUSED = "refused", "Connection refused"
    UNREACHABLE = "unreachable", "Host or network unreachable"
    TIMEOUT = "timeout", "Timed out"
    TLS = "tls", "TLS error"
    CONNECTION = "connection", "Connection error"
    STATUS = "status", "Unexpected status code"
    KEYWORD = "keyword", "Keyword missing"
    REDIRECTS = "redirects", "Too many redirects"
    INVALID = "invalid", "Invalid target"
    INTERNAL = "internal", "Probe error"
    ASSERTION = "assertion", "Assertion failed"
    # Heartbeats: no success ping within the schedule and its grace, or the
    # job itself reported a failure (/fail, a non-zero exit status).
    LATE = "late", "Heartbeat late"
    REPORTED = "reported", "Job reported a failure"
    # Not a check at all: the slot was due and no check ran (see MissedReason).
    MISSED = "missed", "Missed (no check ran)"


class MissedReason(models.TextChoices):
    """Why a due (monitor, region, slot) has no check. A missed slot is *no
    data*, never downtime."""

    DISPATCHER_DOWN = "dispatcher_down", "Dispatcher was not running"
    NO_REGION = "no_region", "No live probe node in the region"
    EXPIRED = "expired", "Expired in the queue"
    NODE_DIED = "node_died", "Probe node died with it"
    OVERLOAD = "overload", "Overload: dispatch could not keep up"


class Event(models.TextChoices):
    """What people are told about a monitor; shared vocabulary of the state
    machine (which decides) and notifications (which tell), kept here because
    notifications depends on monitors and never the reverse."""

    DOWN = "down", "Down"
    UP = "up", "Up (recovered)"
    DEGRADED = "degraded", "Degraded"
    REMINDER = "reminder", "Reminder (still down)"
    FLAPPING = "flapping", "Flapping"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    # The served certificate came within one of the monitor's
    # tls_expiry_alert_days of expiring (once per certificate and threshold).
    TLS_EXPIRING = "tls_expiring", "TLS certificate expiring"
    TEST = "test", "Test"


class AcknowledgedVia(models.TextChoices):
    """How an incident was acknowledged."""

    API = "api", "API"
    LINK = "link", "Link in an alert"
    ADMIN = "admin", "Admin"


class MaintenanceKind(models.TextChoices):
    ONCE = "once", "One-off"
    WEEKLY = "weekly", "Weekly"
    CRON = "cron", "Cron"


class Resolution(models.TextChoices):
    """Sizes of the buckets uptime and latency are summed in. Minutes come
    from the raw results (kept as long); hours and days are rolled up."""

    MINUTE = "minute", "Minute"
    HOUR = "hour", "Hour"
    DAY = "day", "Day"
