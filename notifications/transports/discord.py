"""Discord webhooks: a one-line `content` for push notifications and one
embed with the details, coloured by event, within Discord's length limits
(a longer field makes Discord refuse the whole message with a 400).
"""

from __future__ import annotations

from typing import Any

from ..choices import Event
from .base import Message, clip
from .http import HttpTransport, dump_json

MAX_CONTENT = 2000
MAX_TITLE = 256
MAX_DESCRIPTION = 4096

RED, GREEN, ORANGE, GREY = 0xE74C3C, 0x2ECC71, 0xE67E22, 0x95A5A6
COLOURS = {Event.DOWN: RED, Event.REMINDER: RED, Event.UP: GREEN, Event.DEGRADED: ORANGE, Event.FLAPPING: ORANGE}


class DiscordTransport(HttpTransport):
    def body(self, message: Message) -> bytes:
        return dump_json(discord_document(message))


def discord_document(message: Message) -> dict[str, Any]:
    headline, _, rest = message.text.partition("\n")
    return {
        "content": clip(message.subject, MAX_CONTENT),
        "embeds": [
            {
                "title": clip(headline, MAX_TITLE),
                "description": clip(rest.strip(), MAX_DESCRIPTION),
                "color": COLOURS.get(message.event, GREY),
                "timestamp": message.created_at.isoformat(),
            }
        ],
        # A monitor named "@everyone" must not ping anybody.
        "allowed_mentions": {"parse": []},
    }

