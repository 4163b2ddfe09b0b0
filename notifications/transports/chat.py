"""What Mattermost and Rocket.Chat share: Slack-style attachments with a
colour bar and short fields, and Markdown made inert, so that a monitor
named "@channel" or "[click](…)" neither pings a team nor links anywhere."""

from __future__ import annotations

import re

from ..choices import Event
from .base import Message

GREEN, RED, ORANGE, BLUE, GREY = "#2ECC71", "#E74C3C", "#E67E22", "#3498DB", "#95A5A6"
COLOURS = {Event.DOWN: RED, Event.REMINDER: RED, Event.UP: GREEN, Event.DEGRADED: ORANGE, Event.FLAPPING: ORANGE,
           Event.ACKNOWLEDGED: BLUE}
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def inert(text: str) -> str:
    # Backslash-escape Markdown, and put a zero-width joiner after each @ so
    # that no @mention (@all, @here, @channel, @someone) is ever recognised.
    return _MARKDOWN.sub(r"\\\1", text).replace("@", "@\u200d").replace("<", "&lt;").replace(">", "&gt;")


def colour(message: Message) -> str:
    return COLOURS.get(message.event, GREY)


def fields(message: Message) -> list[dict[str, object]]:
    return [{"short": len(value) < 40, "title": inert(label), "value": inert(value)} for label, value in message.rows]


def ack_line(message: Message) -> str:
    return f"\n[Acknowledge]({message.ack_url})" if message.ack_url else ""
