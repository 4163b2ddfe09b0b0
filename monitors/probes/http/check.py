"""The HTTP(S) check itself: validate the spec, send one request within the
check's deadline, and judge the response by its status, then its keyword.
"""

from __future__ import annotations

import re

import requests
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import LocationParseError
from urllib3.util.url import parse_url

from monitors.choices import ErrorKind

from ..assertions import Observation, failed_assertion, needs_body
from ..base import CheckClock, CheckSpec, ProbeResult, parse_expected_status, status_matches
from .failures import failure, timeout_message
from .keyword import keyword_in, look_for_keyword, read_body
from .session import CheckDeadline, session
from .tls import certificate_expiry

# Methods whose body we never send, even when one is configured.
_BODYLESS_METHODS = frozenset({"GET", "HEAD"})
_METHOD = re.compile(r"^[A-Z][A-Z0-9_-]*$")
_SCHEMES = frozenset({"http", "https"})


def check_http(spec: CheckSpec, clock: CheckClock) -> ProbeResult:
    problem = _spec_problem(spec)
    if problem:
        return clock.invalid(problem)

    # The guard is checked on every connection, redirect hops included (loopr.net).
    with session() as current, CheckDeadline(clock.expires, spec.guard) as deadline:
        response: requests.Response | None = None
        try:
            response = _send(current, spec)
            result = _judge(response, spec, clock, deadline)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a result
            status_code = response.status_code if response is not None else None
            result = failure(exc, spec, clock, deadline, status_code)
        finally:
            if response is not None:
                response.close()
    return result


def _spec_problem(spec: CheckSpec) -> str:
    try:
        parts = parse_url(spec.url)
    except LocationParseError as exc:
        return f"invalid URL: {exc}"
    if (parts.scheme or "").lower() not in _SCHEMES:
        return f"unsupported scheme in {spec.url!r}"
    if not parts.host:
        return "URL has no host"
    if not _METHOD.match(spec.method.upper()):
        return f"invalid HTTP method {spec.method!r}"
    try:
        parse_expected_status(spec.expected_status)
    except ValueError as exc:
        return f"invalid expected status: {exc}"
    return ""


def _send(current: requests.Session, spec: CheckSpec) -> requests.Response:
    method = spec.method.upper()
    body = spec.body.encode() if spec.body and method not in _BODYLESS_METHODS else None
    headers = CaseInsensitiveDict(current.headers)
    headers.update(spec.headers)
    # Preparing the request directly skips Session.request's merging of
    # session params, hooks, auth, cookies and environment settings, none of
    # which a probe uses; that merging was ~15% of a check's CPU time.
    request = requests.PreparedRequest()
    # PreparedRequest.prepare() step by step, less its Cookie header: a
    # check's jar is empty when it starts (session() clears it), and making
    # no header from it took ~3% of a check's CPU (a MockRequest, urlparse
    # calls). Cookies a redirect sets still travel on: resolve_redirects
    # keeps them in request._cookies.
    request.prepare_method(method)
    request.prepare_url(spec.url, None)
    request.prepare_headers(headers)
    request._cookies = RequestsCookieJar()  # noqa: SLF001 - what prepare_cookies(None) sets
    request.prepare_body(body, None, None)
    request.prepare_auth(None, spec.url)  # user:password@ in the URL becomes Basic auth
    request.prepare_hooks(None)
    return current.send(
        request,
        stream=True,  # the body is read only when a keyword needs it
        allow_redirects=spec.follow_redirects,
        timeout=spec.timeout,  # replaced per hop by _ProbeAdapter.send
        verify=spec.tls_verify is not False,
        cert=None,
        proxies={},
    )


def _judge(
    response: requests.Response, spec: CheckSpec, clock: CheckClock, deadline: CheckDeadline
) -> ProbeResult:
    code = response.status_code
    expiry = certificate_expiry(deadline.peer_der) if deadline.peer_der else None
    body: tuple[bytes, bool] | None = None
    if not status_matches(code, parse_expected_status(spec.expected_status)):
        kind = ErrorKind.STATUS
        error = f"HTTP {code}, expected {spec.expected_status.strip()}"
    else:
        if needs_body(spec.assertions):
            body = read_body(response)  # all of it (up to 1 MiB): the keyword is looked for in it too
        if spec.keyword:
            kind, error = keyword_in(*body, spec.keyword) if body else look_for_keyword(response, spec.keyword)
        else:
            kind, error = ErrorKind.OK, ""
        if kind == ErrorKind.OK and spec.assertions:
            kind, error = _assert(spec, response, body, clock, expiry)
    if deadline.reaped:
        # A cut connection can look like a short but complete response.
        kind, error = ErrorKind.TIMEOUT, timeout_message(spec)
    return clock.result(kind, error, status_code=code, tls_expires_at=expiry)


def _assert(spec: CheckSpec, response: requests.Response, body: tuple[bytes, bool] | None, clock: CheckClock,
            expiry) -> tuple[str, str]:
    seen = Observation(
        status_code=response.status_code,
        headers=response.headers,
        body=_text(body[0], response.encoding) if body is not None else None,
        latency_ms=clock.elapsed_ms(),
        tls_days=(expiry - clock.started_at).total_seconds() / 86400 if expiry is not None else None,
    )
    failed = failed_assertion(spec.assertions, seen)
    return (ErrorKind.ASSERTION, failed) if failed else (ErrorKind.OK, "")


def _text(body: bytes, encoding: str | None) -> str:
    try:
        return body.decode(encoding or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", "replace")
