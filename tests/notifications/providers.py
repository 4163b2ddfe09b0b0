"""Local fakes of the providers' APIs, on 127.0.0.1: each checks a request
the way its provider documents it (path, method, headers, the JSON fields
it requires and their limits) and answers with the provider's real success
or error shapes. A request it would refuse gets the provider's own 400, so a
test that expects delivery fails on any departure from the format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs

from werkzeug import Request, Response

ROUTING_KEY = "R0ut1ngKeyR0ut1ngKeyR0ut1ngKey12"  # 32 characters, as PagerDuty issues them
GENIE_KEY = "3f1a2b4c-0000-4e0f-9a8b-1234567890ab"
BOT_TOKEN = "123456789:AAE_telegram-bot-token-abcdefghij"
PUSHOVER_USER = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
PUSHOVER_TOKEN = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
MATRIX_TOKEN = "syt_bG9vcHI_abcdefghijklmnop_0AbCdE"
NTFY_TOKEN = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2"
ROOM = "!OGEhHVWSdvArJzumhm:matrix.org"

Check = Callable[[Request, Any], str]  # returns what is wrong, "" when the request is as documented


class Fake:
    """One provider: what it checks and how it answers."""

    def __init__(self, check: Check, ok: tuple[int, dict], refusal: tuple[int, dict],
                 rate_limit: tuple[dict, dict[str, str]]) -> None:
        self.check, self.ok, self.refusal, self.rate_limit = check, ok, refusal, rate_limit
        self.requests: list[tuple[Request, Any]] = []
        self.problems: list[str] = []
        self.mode = "accept"  # "accept" | "refuse" | "rate_limit"

    def __call__(self, request: Request) -> Response:
        document = _json(request)
        self.requests.append((request, document))
        problem = self.check(request, document)
        if problem:
            self.problems.append(problem)
        if problem or self.mode == "refuse":
            status, body = self.refusal
            return _reply(status, body if not problem else {**body, "loopr_test_problem": problem})
        if self.mode == "rate_limit":
            body, headers = self.rate_limit
            return _reply(429, body, headers)
        return _reply(*self.ok)

    @property
    def documents(self) -> list[Any]:
        return [document for _, document in self.requests]


def _json(request: Request) -> Any:
    if request.mimetype == "application/x-www-form-urlencoded":
        return request.form.to_dict()
    try:
        return json.loads(request.get_data())
    except ValueError:
        return None


def _reply(status: int, body: dict, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")


def _json_post(request: Request, method: str = "POST") -> str:
    if request.method != method:
        return f"method {request.method}, expected {method}"
    if not request.headers.get("Content-Type", "").startswith("application/json"):
        return f"Content-Type {request.headers.get('Content-Type')!r}"
    return ""


def _missing(document: Any, *fields: str) -> str:
    if not isinstance(document, dict):
        return "the body is not a JSON object"
    absent = [f for f in fields if document.get(f) in (None, "")]
    return f"missing {', '.join(absent)}" if absent else ""


# --- PagerDuty Events API v2 ------------------------------------------------------


def check_pagerduty(request: Request, event: Any) -> str:
    if request.path == "/v2/change/enqueue":
        return _json_post(request) or _missing(event, "routing_key", "payload") or _missing(
            event["payload"], "summary")
    if request.path != "/v2/enqueue":
        return f"path {request.path}"
    problem = _json_post(request) or _missing(event, "routing_key", "event_action")
    if problem:
        return problem
    if len(event["routing_key"]) != 32:
        return "Length of 'routing_key' is incorrect (should be 32 characters)"
    if event["event_action"] not in {"trigger", "acknowledge", "resolve"}:
        return "'event_action' is invalid"
    if event["event_action"] != "trigger":
        return _missing(event, "dedup_key")
    payload = event.get("payload")
    problem = _missing(payload, "summary", "source", "severity")
    if problem:
        return f"payload: {problem}"
    if payload["severity"] not in {"critical", "error", "warning", "info"}:
        return "'payload.severity' is invalid"
    if len(payload["summary"]) > 1024 or len(event.get("dedup_key") or "") > 255:
        return "too long"
    return ""


PAGERDUTY = dict(
    ok=(202, {"status": "success", "message": "Event processed", "dedup_key": "srv01/HTTP"}),
    refusal=(400, {"status": "invalid event", "message": "Event object is invalid",
                   "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]}),
    rate_limit=({"status": "throttle event", "message": "Requests for this service are arriving too quickly."},
                {"Retry-After": "30"}),
)


# --- Opsgenie Alert API -----------------------------------------------------------


def check_opsgenie(request: Request, body: Any) -> str:
    if request.headers.get("Authorization") != f"GenieKey {GENIE_KEY}":
        return f"Authorization {request.headers.get('Authorization')!r}"
    problem = _json_post(request)
    if problem:
        return problem
    path = re.sub(r"^/eu", "", request.path)
    if path == "/v2/alerts":
        problem = _missing(body, "message")
        if problem:
            return problem
        if len(body["message"]) > 130 or len(body.get("alias", "")) > 512 or len(body.get("description", "")) > 15000:
            return "a field is over Opsgenie's limit"
        if body.get("priority", "P3") not in {"P1", "P2", "P3", "P4", "P5"}:
            return "priority"
        return ""
    match = re.fullmatch(r"/v2/alerts/([^/]+)/(close|acknowledge|notes)", path)
    if not match or request.args.get("identifierType") != "alias":
        return f"path {request.path}?{request.query_string.decode()}"
    if match.group(2) == "notes":
        return _missing(body, "note")
    return ""


OPSGENIE = dict(
    ok=(202, {"result": "Request will be processed", "took": 0.302, "requestId": "43a29c5c-3dbf-4fa4-9c26"}),
    refusal=(422, {"message": "Request body is not processable. Please check the errors.",
                   "errors": {"message": "Message can not be empty."}, "took": 0.0}),
    rate_limit=({"message": "You are making too many requests! To avoid errors, we recommend you limit requests.",
                 "took": 0.0}, {"Retry-After": "12"}),
)


# --- Microsoft Teams (Workflows webhook, Adaptive Card) ----------------------------


def check_teams(request: Request, body: Any) -> str:
    problem = _json_post(request) or _missing(body, "type", "attachments")
    if problem:
        return problem
    if body["type"] != "message" or len(body["attachments"]) != 1:
        return "expected one attachment in a message"
    attachment = body["attachments"][0]
    if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
        return "contentType"
    card = attachment.get("content") or {}
    if card.get("type") != "AdaptiveCard" or not card.get("version") or not card.get("body"):
        return "the content is not an Adaptive Card"
    for element in card["body"]:
        if element.get("type") not in {"TextBlock", "FactSet"}:
            return f"unexpected element {element.get('type')}"
    for action in card.get("actions", []):
        if action.get("type") != "Action.OpenUrl" or not action.get("url", "").startswith("http"):
            return "an action is not an Action.OpenUrl"
    return ""


TEAMS = dict(
    ok=(202, {}),
    refusal=(400, {"error": {"code": "InvalidRequestContent", "message": "The input body for trigger 'manual' of "
                             "type 'Request' did not match its schema definition."}}),
    rate_limit=({"error": {"code": "WorkflowTriggeredTooManyTimes", "message": "Rate limit"}}, {"Retry-After": "9"}),
)


# --- Telegram Bot API ---------------------------------------------------------------

TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler",
                 "blockquote", "span"}


class _TelegramHtml(HTMLParser):
    """Reads text the way Telegram's HTML parse mode does, refusing what it refuses."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.links: list[str] = []
        self.problem = ""
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in TELEGRAM_TAGS:
            self.problem = f"Bad Request: can't parse entities: Unsupported start tag \"{tag}\""
        self.open.append(tag)
        if tag == "a":
            self.links.append(dict(attrs).get("href", ""))

    def handle_endtag(self, tag):
        if not self.open or self.open.pop() != tag:
            self.problem = f"Bad Request: can't parse entities: Unmatched end tag \"{tag}\""

    def handle_data(self, data):
        self.text.append(data)


def telegram_text(html: str) -> tuple[str, list[str], str]:
    parser = _TelegramHtml()
    parser.feed(html)
    parser.close()
    # Telegram reads only &lt; &gt; &amp; &quot; and numeric entities; a bare < or & is an error.
    if re.search(r"&(?!(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)", html):
        parser.problem = "Bad Request: can't parse entities: bare &"
    return "".join(parser.text), parser.links, parser.problem or ("unclosed tags" if parser.open else "")


def check_telegram(request: Request, body: Any) -> str:
    if request.path != f"/bot{BOT_TOKEN}/sendMessage":
        return f"path {request.path}"
    problem = _json_post(request) or _missing(body, "chat_id", "text")
    if problem:
        return problem
    if body.get("parse_mode") != "HTML":
        return "parse_mode"
    _, _, problem = telegram_text(body["text"])
    return problem or ("text too long" if len(body["text"]) > 4096 else "")


TELEGRAM = dict(
    ok=(200, {"ok": True, "result": {"message_id": 42, "date": 1764990000, "chat": {"id": -1001234567890,
                                                                                   "type": "supergroup"}}}),
    refusal=(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}),
    # Telegram says how long to wait in the body, not in a header.
    rate_limit=({"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
                 "parameters": {"retry_after": 7}}, {}),
)


# --- ntfy -----------------------------------------------------------------------------


def check_ntfy(request: Request, body: Any) -> str:
    if request.path != "/":
        return f"path {request.path}: JSON messages are published to the server's root"
    if request.headers.get("Authorization") not in (None, f"Bearer {NTFY_TOKEN}"):
        return "Authorization"
    problem = _json_post(request) or _missing(body, "topic", "message")
    if problem:
        return problem
    if body.get("priority") not in {1, 2, 3, 4, 5}:
        return "priority"
    if not all(isinstance(tag, str) for tag in body.get("tags", [])):
        return "tags"
    for action in body.get("actions", []):
        if action.get("action") != "view" or not action.get("label") or not action.get("url"):
            return "action"
    return ""


NTFY = dict(
    ok=(200, {"id": "sPs71M8A2T", "time": 1764990000, "expires": 1765033200, "event": "message",
              "topic": "alerts", "message": "..."}),
    refusal=(403, {"code": 40301, "http": 403, "error": "forbidden", "link": "https://ntfy.sh/docs/publish/"}),
    rate_limit=({"code": 42901, "http": 429, "error": "limit reached: too many requests"}, {"Retry-After": "5"}),
)


# --- Pushover ---------------------------------------------------------------------------


def check_pushover(request: Request, body: Any) -> str:
    if request.path != "/1/messages.json" or request.method != "POST":
        return f"{request.method} {request.path}"
    if request.mimetype != "application/x-www-form-urlencoded":
        return f"Content-Type {request.mimetype}: parameters are form-encoded"
    problem = _missing(body, "token", "user", "message")
    if problem:
        return problem
    if body["token"] != PUSHOVER_TOKEN:
        return "application token is invalid"
    if len(body["message"]) > 1024 or len(body.get("title", "")) > 250:
        return "message or title too long"
    if body.get("priority", "0") not in {"-2", "-1", "0", "1", "2"}:
        return "priority"
    if body.get("priority") == "2":
        if not body.get("retry", "").isdigit() or int(body["retry"]) < 30:
            return "retry must be supplied with priority=2, and be at least 30"
        if not body.get("expire", "").isdigit() or int(body["expire"]) > 10800:
            return "expire must be supplied with priority=2, and be at most 10800"
    return ""


PUSHOVER = dict(
    ok=(200, {"status": 1, "request": "647d2300-702c-4b38-8b2f-d56326ae460b"}),
    refusal=(400, {"user": "invalid", "errors": ["user identifier is not a valid user, group, or subscribed user "
                                                 "key, see https://pushover.net/api#identifiers"],
                   "status": 0, "request": "5042853c-402d-4a18-abcb-168734a801de"}),
    rate_limit=({"status": 0, "errors": ["application is over its monthly limit"]}, {"Retry-After": "60"}),
)


# --- Google Chat ------------------------------------------------------------------------------


def check_google_chat(request: Request, body: Any) -> str:
    if not re.fullmatch(r"/v1/spaces/[^/]+/messages", request.path):
        return f"path {request.path}"
    query = parse_qs(request.query_string.decode())
    if query.get("key") != ["k3y"] or query.get("token") != ["t0k"]:
        return "the webhook's key and token were lost"
    if query.get("messageReplyOption") != ["REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"] or not query.get("threadKey"):
        return "thread"
    problem = _json_post(request)
    if problem:
        return problem
    if not isinstance(body, dict) or not (body.get("text") or body.get("cardsV2")):
        return "a message needs text or cards"
    for card in body.get("cardsV2", []):
        if not card.get("cardId") or not card.get("card", {}).get("sections"):
            return "cardsV2"
    return ""


GOOGLE_CHAT = dict(
    ok=(200, {"name": "spaces/AAAA/messages/abc.abc", "text": "...", "thread": {"name": "spaces/AAAA/threads/x"}}),
    refusal=(400, {"error": {"code": 400, "message": "Invalid JSON payload received.", "status": "INVALID_ARGUMENT"}}),
    rate_limit=({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}},
                {"Retry-After": "4"}),
)


# --- Mattermost and Rocket.Chat incoming webhooks -----------------------------------------------


def check_slack_style(request: Request, body: Any) -> str:
    problem = _json_post(request) or _missing(body, "text")
    if problem:
        return problem
    for attachment in body.get("attachments", []):
        if not re.fullmatch(r"#[0-9A-Fa-f]{6}", attachment.get("color", "")):
            return "attachment colour"
        for field in attachment.get("fields", []):
            if not {"title", "value"} <= field.keys():
                return "field"
    return ""


MATTERMOST = dict(
    ok=(200, {}),
    refusal=(400, {"id": "web.incoming_webhook.text.app_error", "message": "No text specified.",
                   "status_code": 400}),
    rate_limit=({"id": "api.context.rate_limit", "message": "Too many requests", "status_code": 429},
                {"Retry-After": "3"}),
)
ROCKETCHAT = dict(
    ok=(200, {"success": True}),
    refusal=(400, {"success": False, "error": "Invalid integration"}),
    rate_limit=({"success": False, "error": "Error, too many requests. Please slow down."}, {"Retry-After": "3"}),
)


# --- Matrix client-server API ----------------------------------------------------------------------


def check_matrix(request: Request, body: Any) -> str:
    match = re.fullmatch(r"/_matrix/client/v3/rooms/([^/]+)/send/m\.room\.message/([^/]+)", request.path)
    raw_path = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    if not match:
        return f"path {request.path}"
    if "%21" not in raw_path or "%3A" not in raw_path:
        return "the room id is not escaped in the path"
    if request.method != "PUT":
        return f"method {request.method}"
    if request.headers.get("Authorization") != f"Bearer {MATRIX_TOKEN}":
        return "Authorization"
    problem = _json_post(request, "PUT") or _missing(body, "msgtype", "body")
    if problem:
        return problem
    if body["msgtype"] not in {"m.text", "m.notice"}:
        return "msgtype"
    if "formatted_body" in body and body.get("format") != "org.matrix.custom.html":
        return "format"
    return ""


MATRIX = dict(
    ok=(200, {"event_id": "$YUwRidLecu:example.com"}),
    refusal=(403, {"errcode": "M_FORBIDDEN", "error": "User @loopr:example.org not in room"}),
    rate_limit=({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2000}, {}),
)


# --- a generic receiver ---------------------------------------------------------------------------


def check_anything(request: Request, body: Any) -> str:
    return "" if request.method == "GET" or body is not None else "the body is not JSON"


GENERIC = dict(ok=(200, {"ok": True}), refusal=(400, {"error": "bad"}), rate_limit=({"error": "slow"},
                                                                                  {"Retry-After": "2"}))
