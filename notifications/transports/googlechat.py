"""Google Chat incoming webhooks: a card (header, one decorated text per
fact, an Acknowledge button), and the summary as the message's text for
notifications. Messages of one incident share a thread (`threadKey`), so
that its down, reminders and recovery read as one conversation.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .base import Message, clip
from .http import HttpTransport, dump_json


class GoogleChatTransport(HttpTransport):
    def url(self, message: Message) -> str:
        parts = urlsplit(self.checked_target())
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in {"threadKey", "messageReplyOption"}]
        query += [("threadKey", message.dedup_key()), ("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD")]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def body(self, message: Message) -> bytes:
        return dump_json(google_chat_message(message))

    def headers(self, message: Message, body: bytes) -> dict[str, str]:
        return {**super().headers(message, body), "Content-Type": "application/json; charset=UTF-8"}


def google_chat_message(message: Message) -> dict[str, Any]:
    widgets: list[dict[str, Any]] = [
        {"decoratedText": {"topLabel": escape(label), "text": escape(clip(value, 2000)), "wrapText": True}}
        for label, value in message.rows
    ]
    if message.ack_url:
        widgets.append({"buttonList": {"buttons": [
            {"text": "Acknowledge", "onClick": {"openLink": {"url": message.ack_url}}}]}})
    return {
        # Text messages read <users/all> as a mention of everyone: the summary
        # goes out escaped (a card's text is HTML, escaped too).
        "text": escape(clip(message.summary, 4000), quote=False),
        "cardsV2": [{
            "cardId": f"loopr-{message.id}",
            "card": {
                "header": {"title": clip(message.summary, 200), "subtitle": "Loopr"},
                "sections": [{"widgets": widgets}],
            },
        }],
    }
