"""The generic "HTTP request" kind, for anything without a kind of its own:
the user's URL, method, headers and JSON body template.

The template is JSON in which strings may hold `{{placeholders}}` (their
names: PLACEHOLDERS). It is parsed once, when the channel is saved, and
filled in as data, never as text, so every value is escaped for JSON
whatever it holds: a string that is only a placeholder takes the value's own
type (`"{{incident.id}}"` → 42, `"{{incident.regions}}"` → a list), and a
placeholder inside a longer string is put in as text. Without a template
the body is the webhook's JSON payload. The secret, if set, is sent as the
Authorization header's value (e.g. `Bearer abc…`), so that the key is not
shown with the rest of the options.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .base import Message, TransportError
from .http import HttpTransport, dump_json
from .validation import Options

METHODS = ["POST", "PUT", "PATCH", "GET", "DELETE"]
MAX_HEADERS = 20
MAX_TEMPLATE = 10000
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_.]+)\s*\}\}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")
# Set by the HTTP client from the request itself; a user's value would contradict it.
_RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "authorization"}

PLACEHOLDERS = [
    "id", "event", "type", "timestamp", "summary", "headline", "text", "details", "ack_url",
    "monitor.id", "monitor.name", "monitor.url", "monitor.status",
    "incident.id", "incident.started_at", "incident.confirmed_at", "incident.resolved_at",
    "incident.duration_seconds", "incident.cause.kind", "incident.cause.message", "incident.regions",
]


class HttpRequestTransport(HttpTransport):
    secret_label = "Authorization header value"

    @classmethod
    def clean_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        options = Options(config)
        options.choice("method", METHODS, "POST")
        for name, check, default in (("headers", header_problem, {}), ("body", template_problem, "")):
            value = options.raw(name, default)
            problem = check(value)
            if problem:
                options.error(name, problem)
            else:
                options.keep(name, value)
        return options.done()

    def method(self, message: Message) -> str:
        return str(self.options.get("method") or "POST")

    def body(self, message: Message) -> bytes:
        if self.method(message) == "GET":
            return b""
        template = self.options.get("body") or ""
        if not template:
            return dump_json(message.payload)
        try:
            document = json.loads(template)
        except ValueError as exc:
            raise TransportError(f"invalid body template: {exc}", permanent=True) from exc
        return dump_json(fill(document, placeholder_values(message)))

    def headers(self, message: Message, body: bytes) -> dict[str, str]:
        headers = super().headers(message, body)
        if not body:
            headers.pop("Content-Type")
        headers.update({str(k): str(v) for k, v in (self.options.get("headers") or {}).items()})
        if self.secret:
            headers["Authorization"] = self.secret
        return headers


def header_problem(headers: object) -> str:
    if not isinstance(headers, dict):
        return 'expected an object of header names and values, e.g. {"X-Team": "ops"}.'
    if len(headers) > MAX_HEADERS:
        return f"at most {MAX_HEADERS} headers."
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            return f"{name!r} is not a valid header name."
        if name.lower() in _RESERVED_HEADERS:
            return f"{name} is set by Loopr" + (" (put its value in the secret)." if name.lower() == "authorization"
                                               else ".")
        if not isinstance(value, str) or len(value) > 1000 or any(ord(c) < 32 or ord(c) == 127 for c in value):
            return f"the value of {name} must be one line of text of at most 1000 characters."
    return ""


def template_problem(template: object) -> str:
    if not isinstance(template, str):
        return "expected the JSON body template as a string."
    if not template:
        return ""
    if len(template) > MAX_TEMPLATE:
        return f"at most {MAX_TEMPLATE} characters."
    try:
        document = json.loads(template)
    except ValueError as exc:
        return (f"not JSON ({exc}); placeholders go inside strings: \"{{{{monitor.id}}}}\" alone "
                "keeps the value's type.")
    unknown = sorted({name for name in names_in(document) if name not in PLACEHOLDERS})
    if unknown:
        return f"unknown placeholder(s) {', '.join(unknown)}; known: {', '.join(PLACEHOLDERS)}."
    return ""


def names_in(node: Any) -> list[str]:
    if isinstance(node, str):
        return PLACEHOLDER.findall(node)
    if isinstance(node, list):
        return [name for item in node for name in names_in(item)]
    if isinstance(node, dict):
        return [name for key, value in node.items() for name in names_in(key) + names_in(value)]
    return []


def placeholder_values(message: Message) -> dict[str, Any]:
    data, monitor, incident = message.data, message.monitor, message.incident
    cause = incident.get("cause") or {}
    values: dict[str, Any] = {
        "id": message.id, "event": message.event, "type": message.payload.get("type"),
        "timestamp": message.payload.get("timestamp"), "summary": message.summary, "headline": message.headline,
        "text": message.text, "details": data.get("details"), "ack_url": message.ack_url or None,
        "incident.cause.kind": cause.get("kind"), "incident.cause.message": cause.get("message"),
    }
    for key in ("id", "name", "url", "status"):
        values[f"monitor.{key}"] = monitor.get(key)
    for key in ("id", "started_at", "confirmed_at", "resolved_at", "duration_seconds", "regions"):
        values[f"incident.{key}"] = incident.get(key)
    return values


def fill(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, str):
        whole = PLACEHOLDER.fullmatch(node)
        if whole:
            return values.get(whole.group(1))
        return PLACEHOLDER.sub(lambda match: as_text(values.get(match.group(1))), node)
    if isinstance(node, list):
        return [fill(item, values) for item in node]
    if isinstance(node, dict):
        return {fill_key(key, values): fill(value, values) for key, value in node.items()}
    return node


def fill_key(key: str, values: dict[str, Any]) -> str:
    return PLACEHOLDER.sub(lambda match: as_text(values.get(match.group(1))), key)


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else str(value)
