"""Microsoft Teams (a Workflows "post to a channel when a webhook request is
received" flow, or a classic incoming webhook): one Adaptive Card, its title
coloured by event, the facts as a FactSet, and an Acknowledge button.
"""

from __future__ import annotations

from typing import Any

from ..choices import Event
from .base import Message, clip
from .http import HttpTransport, dump_json

COLOUR = {Event.DOWN: "attention", Event.REMINDER: "attention", Event.UP: "good", Event.DEGRADED: "warning",
          Event.FLAPPING: "warning", Event.ACKNOWLEDGED: "accent"}


class TeamsTransport(HttpTransport):
    def body(self, message: Message) -> bytes:
        return dump_json(teams_message(message))


def plain(text: str) -> str:
    # TextBlocks read a small subset of Markdown (emphasis, links, lists): a
    # monitor named "**x**" or "[a](b)" shows as typed, not as formatting or a link.
    return "".join("\\" + ch if ch in "\\*_[]" else ch for ch in text)


def teams_message(message: Message) -> dict[str, Any]:
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": plain(clip(message.summary, 1000)), "weight": "Bolder", "size": "Medium",
             "color": COLOUR.get(message.event, "default"), "wrap": True},
            {"type": "FactSet", "facts": [{"title": plain(label), "value": plain(clip(value, 1000))}
                                          for label, value in message.rows]},
        ],
        "msteams": {"width": "Full"},
    }
    if message.ack_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Acknowledge", "url": message.ack_url}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card},
        ],
    }
