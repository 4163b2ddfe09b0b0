"""Matrix, client-server API: an `m.room.message` (msgtype `m.notice`, as
bots send, so that other bots do not answer it) with a plain and an HTML
body, PUT with the notification id as the transaction id, so that a retry
the homeserver already has is not posted twice. Target: the room id
(!abc:example.org); option `homeserver`: its base URL; secret: the bot
account's access token.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any
from urllib.parse import quote

from .base import Message
from .http import HttpTransport, dump_json, provider_url, reply_json
from .validation import Options, validate_http_url, validate_token

_ROOM_ID = re.compile(r"![A-Za-z0-9._=/+-]{1,255}:[A-Za-z0-9.-]{1,253}(:\d{1,5})?")
_ACCESS_TOKEN = re.compile(r"[\x21-\x7e]{8,500}")


def validate_room_id(value: str) -> str:
    return validate_token(value, "Matrix room id", _ROOM_ID, "!AbCdEf:example.org (room settings → Advanced)")


class MatrixTransport(HttpTransport):
    target_validator = staticmethod(validate_room_id)
    secret_label = "access token"
    secret_required = True

    @classmethod
    def clean_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        options = Options(config)
        options.url("homeserver")
        return options.done()

    @classmethod
    def clean_secret(cls, secret: str) -> str:
        return validate_token(super().clean_secret(secret), "Matrix access token", _ACCESS_TOKEN, "syt_…")

    def url(self, message: Message) -> str:
        homeserver = validate_http_url(self.options.get("homeserver", ""))
        room = quote(self.checked_target(), safe="")
        return provider_url(homeserver, f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{quote(message.id)}")

    def method(self, message: Message) -> str:
        return "PUT"

    def body(self, message: Message) -> bytes:
        return dump_json(matrix_message(message))

    def headers(self, message: Message, body: bytes) -> dict[str, str]:
        return {**super().headers(message, body), "Authorization": f"Bearer {self.secret}"}

    def retry_after_in_reply(self, reply: str) -> float | None:
        # {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2000}
        ms = reply_json(reply).get("retry_after_ms")
        return ms / 1000 if isinstance(ms, (int, float)) else None


def matrix_message(message: Message) -> dict[str, Any]:
    plain = [message.summary, ""] + [f"{label}: {value}" for label, value in message.rows]
    html = [f"<p><strong>{escape(message.summary)}</strong></p>", "<ul>"]
    html += [f"<li><strong>{escape(label)}:</strong> {escape(value)}</li>" for label, value in message.rows]
    html.append("</ul>")
    if message.ack_url:
        plain += ["", f"Acknowledge: {message.ack_url}"]
        html.append(f'<p><a href="{escape(message.ack_url)}">Acknowledge</a></p>')
    return {"msgtype": "m.notice", "body": "\n".join(plain), "format": "org.matrix.custom.html",
            "formatted_body": "".join(html)}
