"""The heartbeat ping endpoint, in Healthchecks' grammar so existing scripts
port over: `/ping/<uuid>` (success), `/start`, `/fail`, `/log`, `/<exit
status 0-255>`, with an optional `?rid=<uuid>` pairing a run's start and end.

No authentication (the uuid is the secret: 122 random bits) and no CSRF
(cron jobs have no session); a plain Django view, not DRF, because a cron
job's `curl` wants a plain-text answer and the endpoint's cost is its
throughput. `200 OK` is answered only once the ping is committed.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from ..choices import PingKind
from ..heartbeats import MAX_BODY_BYTES, PingRequest, RateLimited, receive_ping

ALLOWED_METHODS = ("GET", "POST", "HEAD")
# Bodies are kept up to MAX_BODY_BYTES and cut beyond; past this they are
# refused unread (a misdirected upload, not a log).
MAX_ACCEPTED_BODY = 1_000_000
_ACTIONS = {"": PingKind.SUCCESS, "start": PingKind.START, "fail": PingKind.FAIL, "log": PingKind.LOG}


def _plain(status: int, text: str) -> HttpResponse:
    response = HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    # Set here: pings skip the site's middleware (loopr/wsgi.py), CommonMiddleware with it.
    response["Content-Length"] = len(response.content)
    return response


@csrf_exempt
def ping(request: HttpRequest, key: uuid.UUID, action: str = "") -> HttpResponse:
    if request.method not in ALLOWED_METHODS:
        response = _plain(405, f"method {request.method} not allowed: use GET, POST or HEAD")
        response["Allow"] = ", ".join(ALLOWED_METHODS)
        return response
    parsed = parse_ping(request, action)
    if isinstance(parsed, HttpResponse):
        return parsed
    try:
        recorded = receive_ping(key, parsed)
    except RateLimited:
        return _plain(429, "too many pings for this heartbeat; try again in a minute")
    if recorded is None:
        return _plain(404, "no heartbeat has this ping URL")
    return _plain(200, "OK")


def parse_ping(request: HttpRequest, action: str) -> PingRequest | HttpResponse:
    """The ping's parts, or the 4xx that says what is wrong with it."""
    if action in _ACTIONS:
        kind, exit_status = _ACTIONS[action], None
    elif action.isdecimal() and len(action) <= 3 and int(action) <= 255:
        kind, exit_status = PingKind.EXIT, int(action)
    elif action.isdecimal():
        return _plain(400, f"exit status {action[:20]} out of range: use 0-255")
    else:
        return _plain(400, f"unknown ping {action[:40]!r}: use start, fail, log or an exit status 0-255")
    rid = None
    if "rid" in request.GET:
        try:
            rid = uuid.UUID(request.GET["rid"])
        except ValueError:
            return _plain(400, "rid must be a UUID")
    body = _body(request)
    if isinstance(body, HttpResponse):
        return body
    return PingRequest(
        kind=kind, exit_status=exit_status, rid=rid, method=request.method, body=body,
        remote_addr=request.META.get("REMOTE_ADDR") or None,
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:200],
    )


def _body(request: HttpRequest) -> str | HttpResponse:
    if request.method != "POST":
        return ""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _plain(400, "Content-Length is not a number")
    if length > MAX_ACCEPTED_BODY:
        return _plain(413, f"ping body of {length} bytes refused: bodies are kept up to {MAX_BODY_BYTES} bytes "
                           f"(cut beyond) and refused above {MAX_ACCEPTED_BODY}")
    raw = request.read(MAX_BODY_BYTES) if length else b""
    # NUL cannot be stored in PostgreSQL text; anything else is kept as sent.
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")
