"""The heartbeat ping endpoint, in Healthchecks' grammar so existing scripts
port over: `/ping/<uuid>` (success), `/start`, `/fail`, `/log`, `/<exit
status 0-255>`, with an optional `?rid=<uuid>` pairing a run's start and end.

No authentication (the uuid is the secret: 122 random bits) and no CSRF
(cron jobs have no session); a plain Django view, not DRF, because a cron
job's `curl` wants a plain-text answer and the endpoint's cost is its
throughput. `200 OK` is answered only once the ping is committed.

The web serves pings through `PingApplication` (loopr/wsgi.py): a plain
WSGI callable that answers a ping the URLs below route here, and passes
anything else to Django. The view is the same logic for Django's own
handler (the test client, and what the callable passes on).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO

from django.core import signals
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware
from django.utils.log import log_response
from django.urls import URLPattern, get_resolver
from django.views.decorators.csrf import csrf_exempt

from ..choices import PingKind
from ..heartbeats import MAX_BODY_BYTES, PingRequest, RateLimited, receive_ping

ALLOWED_METHODS = ("GET", "POST", "HEAD")
# Bodies are kept up to MAX_BODY_BYTES and cut beyond; past this they are
# refused unread (a misdirected upload, not a log).
MAX_ACCEPTED_BODY = 1_000_000
_ACTIONS = {"": PingKind.SUCCESS, "start": PingKind.START, "fail": PingKind.FAIL, "log": PingKind.LOG}
PING_URL_NAMES = ("ping", "ping-action")
CONTENT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def content(self) -> bytes:
        return (self.text + "\n").encode()


@csrf_exempt
def ping(request: HttpRequest, key: uuid.UUID, action: str = "") -> HttpResponse:
    return render(answer_ping(request, key, action))


def render(answer: Answer) -> HttpResponse:
    response = HttpResponse(answer.content, status=answer.status, content_type=CONTENT_TYPE)
    # Set here: pings skip the site's middleware (loopr/wsgi.py), CommonMiddleware with it.
    response["Content-Length"] = len(response.content)
    for name, value in answer.headers:
        response[name] = value
    return response


def answer_ping(request: HttpRequest, key: uuid.UUID, action: str = "") -> Answer:
    if request.method not in ALLOWED_METHODS:
        return Answer(405, f"method {request.method} not allowed: use GET, POST or HEAD",
                      (("Allow", ", ".join(ALLOWED_METHODS)),))
    parsed = parse_ping(request, action)
    if isinstance(parsed, Answer):
        return parsed
    try:
        recorded = receive_ping(key, parsed)
    except RateLimited:
        return Answer(429, "too many pings for this heartbeat; try again in a minute")
    if recorded is None:
        return Answer(404, "no heartbeat has this ping URL")
    return Answer(200, "OK")


def parse_ping(request: HttpRequest, action: str) -> PingRequest | Answer:
    """The ping's parts, or the 4xx that says what is wrong with it."""
    if action in _ACTIONS:
        kind, exit_status = _ACTIONS[action], None
    elif action.isdecimal() and len(action) <= 3 and int(action) <= 255:
        kind, exit_status = PingKind.EXIT, int(action)
    elif action.isdecimal():
        return Answer(400, f"exit status {action[:20]} out of range: use 0-255")
    else:
        return Answer(400, f"unknown ping {action[:40]!r}: use start, fail, log or an exit status 0-255")
    rid = None
    if request.META.get("QUERY_STRING") and "rid" in request.GET:
        try:
            rid = uuid.UUID(request.GET["rid"])
        except ValueError:
            return Answer(400, "rid must be a UUID")
    body = _body(request)
    if isinstance(body, Answer):
        return body
    return PingRequest(
        kind=kind, exit_status=exit_status, rid=rid, method=request.method, body=body,
        remote_addr=request.META.get("REMOTE_ADDR") or None,
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:200],
    )


def _body(request: HttpRequest) -> str | Answer:
    if request.method != "POST":
        return ""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return Answer(400, "Content-Length is not a number")
    if length > MAX_ACCEPTED_BODY:
        return Answer(413, f"ping body of {length} bytes refused: bodies are kept up to {MAX_BODY_BYTES} bytes "
                           f"(cut beyond) and refused above {MAX_ACCEPTED_BODY}")
    raw = request.read(MAX_BODY_BYTES) if length else b""
    # NUL cannot be stored in PostgreSQL text; anything else is kept as sent.
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")


class PingApplication:
    """The ping view as a plain WSGI callable, for the web's throughput: a
    ping's own work is a Redis script and one SQL statement, and Django's
    handler (middleware chain, URL resolver, response object) cost about as
    much again. It routes by the URL patterns named PING_URL_NAMES (the one
    grammar) and keeps what Django's handler does for such a request: the
    request signals (database connections' age), SecurityMiddleware (its
    HTTPS redirect, which it leaves to Django, and its headers), the log
    line of a 4xx and a 500 through the site's handler500. Only a 200 skips
    the response object. Any other path goes to `fallback`."""

    def __init__(self, fallback) -> None:
        self.fallback = fallback
        self.security = SecurityMiddleware(lambda request: None)

    def __call__(self, environ, start_response):
        request = WSGIRequest(environ)
        route = _route(request.path_info)
        if route is None or self.security.process_request(request) is not None:
            return self.fallback(environ, start_response)
        signals.request_started.send(sender=self.__class__, environ=environ)
        try:
            answer = answer_ping(request, **route)
            if answer.status == 200:
                start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(answer.content))),
                                          *self._security_headers(request.is_secure())])
                return [answer.content]
            response = render(answer)
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        except Exception as exc:
            response = response_for_exception(request, exc)
        finally:
            signals.request_finished.send(sender=self.__class__)
        response = self.security.process_response(request, response)
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        return [response.content]

    @lru_cache(maxsize=2)
    def _security_headers(self, secure: bool) -> tuple[tuple[str, str], ...]:
        """What SecurityMiddleware adds to a response: it depends on the request only by whether it is secure."""
        request = WSGIRequest({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input": BytesIO(),
                               "wsgi.url_scheme": "https" if secure else "http"})
        response = HttpResponse()
        own = set(response.headers)
        return tuple(item for item in self.security.process_response(request, response).items() if item[0] not in own)


@lru_cache(maxsize=1)
def _ping_patterns() -> tuple[URLPattern, ...]:
    return tuple(p for p in get_resolver().url_patterns if getattr(p, "name", None) in PING_URL_NAMES)


def _route(path_info: str) -> dict | None:
    """The view's arguments when the path is a ping URL, else None."""
    for pattern in _ping_patterns():
        match = pattern.pattern.match(path_info[1:])
        if match is not None:
            return match[2]
    return None
