"""Opsgenie, Alert API: an alert per incident, created on down and closed on
up by its alias (the incident), acknowledged when Loopr's incident is; a
reminder is a note on the open alert. The target is the account's region,
`us` or `eu` (each has its own API host); the secret is the API
integration's key, sent as `Authorization: GenieKey …`.

Opsgenie's acknowledgements are not sent back to Loopr.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ValidationError

from ..choices import Event
from .base import Message, clip
from .http import HttpTransport, dump_json, provider_url

MAX_MESSAGE = 130  # Opsgenie's limit on an alert's message
MAX_DESCRIPTION = 15000
MAX_NOTE = 25000
PRIORITY = {Event.DOWN: "P1", Event.DEGRADED: "P3", Event.FLAPPING: "P3", Event.TEST: "P5"}
# Events that act on the alert the incident opened, by alias.
ACTIONS = {Event.UP: "close", Event.ACKNOWLEDGED: "acknowledge", Event.REMINDER: "notes"}


def validate_region(value: str) -> str:
    region = str(value).strip().lower()
    if region not in {"us", "eu"}:
        raise ValidationError("Enter us or eu: where your Opsgenie account lives (its API host).")
    return region


class OpsgenieTransport(HttpTransport):
    target_validator = staticmethod(validate_region)
    secret_label = "Opsgenie API integration key"
    secret_required = True

    def url(self, message: Message) -> str:
        base = settings.LOOPR_OPSGENIE_EU_URL if self.checked_target() == "eu" else settings.LOOPR_OPSGENIE_URL
        action = ACTIONS.get(message.event)
        if action is None:
            return provider_url(base, "/v2/alerts")
        return provider_url(base, f"/v2/alerts/{quote(message.dedup_key(), safe='')}/{action}?identifierType=alias")

    def body(self, message: Message) -> bytes:
        return dump_json(opsgenie_request(message))

    def headers(self, message: Message, body: bytes) -> dict[str, str]:
        return {**super().headers(message, body), "Authorization": f"GenieKey {self.secret}"}


def opsgenie_request(message: Message) -> dict[str, Any]:
    action = ACTIONS.get(message.event)
    if action == "notes":
        return {"source": "Loopr", "note": clip(message.text, MAX_NOTE)}
    if action is not None:
        return {"source": "Loopr", "note": clip(message.summary, MAX_NOTE)}
    alias = f"loopr-test-{message.id}" if message.event == Event.TEST else message.dedup_key()
    details = {label: clip(value, 8000) for label, value in message.rows}
    if message.ack_url:
        details["Acknowledge"] = message.ack_url
    return {
        "message": clip(message.summary, MAX_MESSAGE),
        "alias": alias,
        "description": clip(message.text, MAX_DESCRIPTION),
        "priority": PRIORITY.get(message.event, "P3"),
        "source": "Loopr",
        "entity": clip(str(message.monitor.get("name") or "Loopr"), 512),
        "tags": ["loopr", message.event],
        "details": details,
    }
