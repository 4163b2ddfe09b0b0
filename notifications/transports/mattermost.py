"""Mattermost incoming webhooks: the summary as `text` (what notifications
show), the facts as an attachment with a colour bar, posted as "Loopr"."""

from __future__ import annotations

from typing import Any

from .base import Message, clip
from .chat import ack_line, colour, fields, inert
from .http import HttpTransport, dump_json

MAX_TEXT = 16383  # Mattermost's post limit


class MattermostTransport(HttpTransport):
    def body(self, message: Message) -> bytes:
        return dump_json(mattermost_post(message))


def mattermost_post(message: Message) -> dict[str, Any]:
    return {
        "username": "Loopr",
        "text": clip(f"**{inert(message.summary)}**{ack_line(message)}", MAX_TEXT),
        "attachments": [{
            "fallback": inert(message.summary),
            "color": colour(message),
            "text": inert(message.headline),
            "fields": fields(message),
        }],
    }
