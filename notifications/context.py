"""What a notification says, as plain data: the context frozen into the
outbox row when the event happens and read by `render` at delivery.

Frozen, so that later edits of the monitor do not rewrite an alert that is
still being retried; plain JSON, so that it is stored as it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NotRequired, TypedDict

from django.utils import timezone

from .choices import Event

if TYPE_CHECKING:
    from monitors.models import Incident, Monitor

    from .models import Channel


class MonitorContext(TypedDict):
    id: int | None  # None for a test message
    name: str
    url: str
    status: str


class CauseContext(TypedDict):
    kind: str
    message: str


class IncidentContext(TypedDict):
    id: int
    started_at: str
    confirmed_at: str | None
    resolved_at: str | None
    duration_seconds: float | None
    cause: CauseContext
    regions: list[str]
    region_errors: NotRequired[dict[str, str]]


class ChannelContext(TypedDict):
    name: str
    kind: str


class NotificationContext(TypedDict):
    event: str
    occurred_at: str  # ISO-8601
    monitor: MonitorContext | None
    incident: IncidentContext | None
    details: str | None
    channel: NotRequired[ChannelContext]  # test messages only
    id: NotRequired[str]  # the notification's id, added at delivery


def notification_context(event: str, monitor: MonitorContext, *, incident: IncidentContext | None = None,
                         details: str = "", at: datetime | None = None,
                         channel: ChannelContext | None = None) -> NotificationContext:
    context: NotificationContext = {
        "event": event,
        "occurred_at": (at or timezone.now()).isoformat(),
        "monitor": monitor,
        "incident": incident,
        "details": details,
    }
    if channel is not None:
        context["channel"] = channel
    return context


def event_context(monitor: Monitor, event: str, incident: Incident | None = None, details: str = "",
                  at: datetime | None = None) -> NotificationContext:
    """A monitor's event, with the incident it is about, if any."""
    return notification_context(event, monitor_context(monitor), details=details, at=at,
                                incident=incident_context(incident) if incident is not None else None)


def channel_test_context(channel: Channel) -> NotificationContext:
    """A clearly marked test message, about no monitor."""
    placeholder: MonitorContext = {"id": None, "name": f"test of channel {channel.name}", "url": "", "status": "test"}
    return notification_context(Event.TEST, placeholder, channel={"name": channel.name, "kind": channel.kind},
                                details="This is a test message from Loopr. No monitor changed state.")


def monitor_context(monitor: Monitor) -> MonitorContext:
    return {"id": monitor.pk, "name": monitor.name, "url": monitor.url, "status": monitor.status}


def incident_context(incident: Incident) -> IncidentContext:
    return {
        "id": incident.pk,
        "started_at": incident.started_at.isoformat(),
        "confirmed_at": incident.confirmed_at.isoformat() if incident.confirmed_at else None,
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "duration_seconds": incident.duration.total_seconds(),
        "cause": {"kind": incident.cause_kind, "message": incident.cause},
        "regions": incident.regions,
        "region_errors": incident.region_errors,
    }
