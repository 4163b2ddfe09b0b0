"""ntfy: published as JSON to the server's root with the topic in the body
(so that a monitor named in emoji survives, which headers would not), its
priority by event (down max, up default), tags shown as emoji, and the
acknowledgement link as a view action. Target: the topic URL, e.g.
https://ntfy.sh/mytopic (self-hosted servers too); secret: an optional
access token (tk_…), sent as a bearer token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ValidationError

from ..choices import Event
from .base import Message, clip
from .http import HttpTransport, dump_json
from .validation import validate_http_url

MAX_MESSAGE = 4096  # ntfy turns longer messages into attachments
PRIORITY = {Event.DOWN: 5, Event.REMINDER: 4, Event.DEGRADED: 4, Event.TLS_EXPIRING: 4, Event.FLAPPING: 3,
            Event.UP: 3, Event.ACKNOWLEDGED: 2, Event.TEST: 2}
TAGS = {Event.DOWN: "rotating_light", Event.REMINDER: "rotating_light", Event.DEGRADED: "warning",
        Event.TLS_EXPIRING: "lock", Event.FLAPPING: "warning", Event.UP: "white_check_mark", Event.ACKNOWLEDGED: "eyes", Event.TEST: "test_tube"}


def validate_topic_url(value: str) -> str:
    url = validate_http_url(value)
    parts = urlsplit(url)
    topic = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if not topic or parts.query or parts.fragment:
        raise ValidationError("Enter the topic's URL, e.g. https://ntfy.sh/mytopic (no query).")
    return url


class NtfyTransport(HttpTransport):
    target_validator = staticmethod(validate_topic_url)
    secret_label = "access token"

    def url(self, message: Message) -> str:
        parts = urlsplit(self.checked_target())
        base = parts.path.rstrip("/").rsplit("/", 1)[0] + "/"
        return urlunsplit(parts._replace(path=base))

    def body(self, message: Message) -> bytes:
        topic = urlsplit(self.checked_target()).path.rstrip("/").rsplit("/", 1)[-1]
        return dump_json(ntfy_message(topic, message))

    def headers(self, message: Message, body: bytes) -> dict[str, str]:
        headers = super().headers(message, body)
        if self.secret:
            headers["Authorization"] = f"Bearer {self.secret}"
        return headers


def ntfy_message(topic: str, message: Message) -> dict[str, Any]:
    body = "\n".join(f"{label}: {value}" for label, value in message.rows)
    document: dict[str, Any] = {
        "topic": topic,
        "title": clip(message.summary, 250),
        "message": clip(f"{message.headline}\n\n{body}".strip(), MAX_MESSAGE),
        "priority": PRIORITY.get(message.event, 3),
        "tags": [TAGS.get(message.event, "loudspeaker")],
    }
    if message.ack_url:
        document["actions"] = [{"action": "view", "label": "Acknowledge", "url": message.ack_url, "clear": True}]
    return document
