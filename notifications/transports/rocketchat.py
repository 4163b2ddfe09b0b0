"""Rocket.Chat incoming webhooks (an integration with its script off): the
summary as `text`, the facts as an attachment with a colour bar."""

from __future__ import annotations

from typing import Any

from .base import Message, clip
from .chat import ack_line, colour, fields, inert
from .http import HttpTransport, dump_json

MAX_TEXT = 5000  # Rocket.Chat's default message size limit


class RocketChatTransport(HttpTransport):
    def body(self, message: Message) -> bytes:
        return dump_json(rocketchat_message(message))


def rocketchat_message(message: Message) -> dict[str, Any]:
    return {
        "alias": "Loopr",
        "text": clip(f"*{inert(message.summary)}*{ack_line(message)}", MAX_TEXT),
        "attachments": [{
            "title": inert(message.headline),
            "color": colour(message),
            "fields": fields(message),
        }],
    }
