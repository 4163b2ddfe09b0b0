"""PagerDuty, Events API v2: `trigger` on down (and reminders, degraded,
flapping), `resolve` on up and `acknowledge` on a Loopr acknowledgement, all
with the same `dedup_key` (the incident), so that PagerDuty's own incident
opens and closes with Loopr's. A test is a change event, which pages nobody
and leaves nothing open. The target is the integration's routing key.

PagerDuty's acknowledgements are not sent back to Loopr.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from ..choices import Event
from .base import Message, clip
from .http import HttpTransport, dump_json, provider_url
from .validation import validate_token

MAX_SUMMARY = 1024  # PagerDuty's limit on payload.summary
_ROUTING_KEY = re.compile(r"[A-Za-z0-9]{32}")
SEVERITY = {Event.DOWN: "critical", Event.REMINDER: "critical", Event.DEGRADED: "warning",
            Event.FLAPPING: "warning", Event.TLS_EXPIRING: "warning"}
ACTION = {Event.UP: "resolve", Event.ACKNOWLEDGED: "acknowledge"}


def validate_routing_key(value: str) -> str:
    return validate_token(value, "PagerDuty routing key", _ROUTING_KEY, "32 letters and digits, from the "
                          "service's Events API v2 integration")


class PagerDutyTransport(HttpTransport):
    target_validator = staticmethod(validate_routing_key)

    def url(self, message: Message) -> str:
        path = "/v2/change/enqueue" if message.event == Event.TEST else "/v2/enqueue"
        return provider_url(settings.LOOPR_PAGERDUTY_URL, path)

    def body(self, message: Message) -> bytes:
        return dump_json(pagerduty_event(self.checked_target(), message))


def pagerduty_event(routing_key: str, message: Message) -> dict[str, Any]:
    summary = clip(message.summary, MAX_SUMMARY)
    source = message.monitor.get("url") or message.monitor.get("name") or "Loopr"
    if message.event == Event.TEST:
        return {"routing_key": routing_key,
                "payload": {"summary": summary, "source": "Loopr", "timestamp": message.data.get("timestamp") or
                            message.created_at.isoformat(), "custom_details": {"details": message.data.get("details")}}}
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": ACTION.get(message.event, "trigger"),
                             "dedup_key": message.dedup_key()}
    if event["event_action"] == "trigger":
        event["payload"] = {
            "summary": summary,
            "source": source,
            "severity": SEVERITY.get(message.event, "info"),
            "timestamp": message.created_at.isoformat(),
            "component": message.monitor.get("name"),
            "class": (message.incident.get("cause") or {}).get("kind") or message.event,
            "custom_details": dict(message.rows),
        }
        event["client"] = "Loopr"
        if message.ack_url:
            event["links"] = [{"href": message.ack_url, "text": "Acknowledge in Loopr"}]
    return event
