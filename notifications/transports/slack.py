"""Slack incoming webhooks (and Slack-compatible receivers such as
Mattermost): `text` is what notifications and old clients show, `blocks`
what the channel shows.
"""

from __future__ import annotations

from typing import Any

from .base import Message, clip
from .http import HttpTransport, dump_json

MAX_SECTION_CHARS = 3000  # Slack's limit on a section block's text


class SlackTransport(HttpTransport):
    def body(self, message: Message) -> bytes:
        return dump_json(slack_document(message))


def slack_document(message: Message) -> dict[str, Any]:
    headline, _, rest = message.text.partition("\n")
    section = f"*{escape(headline)}*\n{escape(rest.strip())}".strip()
    return {
        "text": escape(message.subject),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(section, MAX_SECTION_CHARS)}},
        ],
    }


def escape(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>); a monitor name
    # must not be able to page a whole workspace.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

