"""Pushover, `messages.json`: emergency priority (2) for down, repeated
every `retry` seconds until someone confirms it on their phone or `expire`
seconds pass; high (1) for reminders, normal for the rest and quiet (-1) for
tests. Target: the user (or group) key; secret: the application's API token.
The acknowledgement link is the message's supplementary URL.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any
from urllib.parse import urlencode

from django.conf import settings

from ..choices import Event
from .base import Message, clip
from .http import HttpTransport, provider_url
from .validation import Options, validate_token

MAX_MESSAGE = 1024
MAX_TITLE = 250
_KEY = re.compile(r"[A-Za-z0-9]{30}")
PRIORITY = {Event.DOWN: 2, Event.REMINDER: 1, Event.TEST: -1, Event.ACKNOWLEDGED: -1}


def validate_user_key(value: str) -> str:
    return validate_token(value, "Pushover user key", _KEY, "30 letters and digits")


class PushoverTransport(HttpTransport):
    target_validator = staticmethod(validate_user_key)
    secret_label = "application API token"
    secret_required = True

    @classmethod
    def clean_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        options = Options(config)
        # Pushover's own bounds: at least 30 s between repeats, at most 3 h of them.
        options.integer("retry", 60, 30, 10800)
        options.integer("expire", 3600, 30, 10800)
        return options.done()

    @classmethod
    def clean_secret(cls, secret: str) -> str:
        return validate_token(super().clean_secret(secret), "Pushover API token", _KEY, "30 letters and digits")

    def url(self, message: Message) -> str:
        return provider_url(settings.LOOPR_PUSHOVER_URL, "/1/messages.json")

    def body(self, message: Message) -> bytes:
        # Form-encoded: the format every version of Pushover's API documents.
        return urlencode(pushover_message(self.secret, self.checked_target(), message, self.options)).encode("ascii")

    def headers(self, message: Message, body: bytes) -> dict[str, str]:
        return {**super().headers(message, body), "Content-Type": "application/x-www-form-urlencoded"}


def pushover_message(token: str, user: str, message: Message, options: dict[str, Any]) -> dict[str, Any]:
    lines = [f"<b>{escape(label)}:</b> {escape(value)}" for label, value in message.rows]
    document: dict[str, Any] = {
        "token": token,
        "user": user,
        "title": clip(message.summary, MAX_TITLE),
        "message": clip("\n".join(lines) or escape(message.headline), MAX_MESSAGE),
        "html": 1,
        "priority": PRIORITY.get(message.event, 0),
        "timestamp": int(message.created_at.timestamp()),
    }
    if document["priority"] == 2:
        document["retry"] = int(options.get("retry", 60))
        document["expire"] = int(options.get("expire", 3600))
    if message.ack_url:
        document["url"], document["url_title"] = message.ack_url, "Acknowledge in Loopr"
    return document
