"""Telegram, Bot API `sendMessage`: the message in HTML parse mode, every
value escaped (Telegram refuses the whole message at the first stray `<`),
link previews off. Target: the chat id (a number, or @channelname); secret:
the bot token from @BotFather, which goes in the URL's path.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from django.conf import settings

from .base import Message, clip
from .http import HttpTransport, dump_json, provider_url, reply_json
from .validation import validate_token

MAX_TEXT = 4096  # characters, after entities are parsed; kept below it before
_CHAT_ID = re.compile(r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31}")
_BOT_TOKEN = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{20,100}")


def validate_chat_id(value: str) -> str:
    return validate_token(value, "Telegram chat id", _CHAT_ID, "-1001234567890 or @mychannel")


class TelegramTransport(HttpTransport):
    target_validator = staticmethod(validate_chat_id)
    secret_label = "bot token (from @BotFather)"
    secret_required = True

    @classmethod
    def clean_secret(cls, secret: str) -> str:
        secret = super().clean_secret(secret)
        return validate_token(secret, "Telegram bot token", _BOT_TOKEN, "123456789:AAE…")

    def url(self, message: Message) -> str:
        token = validate_token(self.secret, "Telegram bot token", _BOT_TOKEN, "123456789:AAE…")
        return provider_url(settings.LOOPR_TELEGRAM_URL, f"/bot{token}/sendMessage")

    def body(self, message: Message) -> bytes:
        chat: Any = self.checked_target()
        return dump_json({
            "chat_id": int(chat) if chat.lstrip("-").isdigit() else chat,
            "text": telegram_html(message),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        })

    def retry_after_in_reply(self, reply: str) -> float | None:
        # {"ok": false, "error_code": 429, "parameters": {"retry_after": 5}}
        seconds = (reply_json(reply).get("parameters") or {}).get("retry_after")
        return float(seconds) if isinstance(seconds, (int, float)) else None


def telegram_html(message: Message) -> str:
    lines = [f"<b>{escape(message.headline or message.summary, quote=False)}</b>", ""]
    lines += [f"<b>{escape(label, quote=False)}:</b> {escape(value, quote=False)}" for label, value in message.rows]
    if message.ack_url:
        lines += ["", f'<a href="{escape(message.ack_url)}">Acknowledge</a>']
    text = "\n".join(lines)
    # Cut at a line, never inside a tag or an entity.
    while len(text) > MAX_TEXT and "\n" in text:
        text = text.rsplit("\n", 1)[0]
    return clip(text, MAX_TEXT)
