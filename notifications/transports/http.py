"""The HTTP base of every transport but email: one request per attempt,
judged by its status code.

Three things a receiver must not be able to do to a worker:

* Keep it busy. `requests` timeouts apply per socket operation, so a receiver
  trickling a byte a second would never trip them; the attempt runs under a
  `loopr.net.Deadline`, whose reaper shuts the connection's socket down when
  the attempt's total deadline passes.
* Make it read a huge answer. At most `MAX_BODY_BYTES` of the body are read,
  and only `MAX_REPLY_CHARS` of it are kept.
* Make it reach inside the network (SSRF). The connection resolves the host
  and puts every address to the `public` target policy (loopr/addresses.py,
  the probes' guard) as it connects, so a DNS answer that changes between
  validation and delivery is still caught; redirects are never followed at
  all. Operators whose receivers live on a private network set
  LOOPR_WEBHOOK_ALLOW_PRIVATE.

The probe's adapter (`monitors/probes/http/session.py`) has TLS settings and
pools of its own; this module mounts adapters of its own and shares the
deadline, its guard and its bounded connections.
"""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.url import parse_url

from loopr import net
from loopr.addresses import OPEN, Guard, RefusedAddress, TargetPolicy

from .base import MAX_REPLY_CHARS, Delivery, Message, Transport, TransportError, clip
from .validation import validate_http_url

DEFAULT_TIMEOUT = 10.0  # seconds for the whole attempt
MAX_TIMEOUT = 60.0
MAX_BODY_BYTES = 64 * 1024
MAX_RETRY_AFTER = 3600.0  # a receiver asking for a day's pause gets an hour
USER_AGENT = "Loopr-Webhook/1"

# 408 Request Timeout and 429 Too Many Requests are the 4xx worth retrying.
_RETRYABLE_4XX = frozenset({408, 429})
_HONOURS_RETRY_AFTER = frozenset({429, 503})


class HttpTransport(Transport):
    """Sends `body(message)` (JSON unless `headers` say otherwise) to
    `url(message)` with `method(message)`: by default a POST to the target.

    A provider's kind overrides only what differs (its URL, its document,
    the header carrying its key); the SSRF guard, the deadline and the
    judgement of the answer stay here."""

    target_validator = staticmethod(validate_http_url)

    def url(self, message: Message) -> str:
        return self.checked_target()

    def method(self, message: Message) -> str:
        return "POST"

    def body(self, message: Message) -> bytes:
        raise NotImplementedError

    def retry_after_in_reply(self, reply: str) -> float | None:
        """Seconds a 429's body asks us to wait, for providers that say it
        there rather than (or as well as) in Retry-After."""
        return None

    def headers(self, message: Message, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            # Replies are only kept as a snippet; a compressed one could
            # unpack to far more than we mean to read.
            "Accept-Encoding": "identity",
        }

    @property
    def timeout(self) -> float:
        try:
            seconds = float(self.options.get("timeout", DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            seconds = DEFAULT_TIMEOUT
        return min(max(seconds, 0.1), MAX_TIMEOUT)

    def deliver(self, message: Message) -> Delivery:
        url = self.url(message)
        body = self.body(message)
        try:
            return send_request(self.method(message), url, body, self.headers(message, body), self.timeout)
        except TransportError as exc:
            if exc.status_code == 429 and exc.retry_after is None:
                hint = self.retry_after_in_reply(exc.reply)
                exc.retry_after = None if hint is None else min(max(hint, 0.0), MAX_RETRY_AFTER)
            raise


def provider_url(base: str, path: str) -> str:
    """A provider's endpoint: its base URL (a setting, so that it can be
    pointed elsewhere) and the path its documentation names."""
    return base.rstrip("/") + path


def reply_json(reply: str) -> dict[str, Any]:
    try:
        document = json.loads(reply)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def dump_json(document: Any) -> bytes:
    # Compact and ASCII-only, so the bytes signed are the bytes sent whatever
    # a receiver's framework does with encodings.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Delivery:
    """One POST within `timeout` seconds in total; Delivery if 2xx, else TransportError."""
    return send_request("POST", url, body, headers, timeout)


def send_request(method: str, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Delivery:
    """One request within `timeout` seconds in total; Delivery if 2xx, else TransportError."""
    allow_private = bool(getattr(settings, "LOOPR_WEBHOOK_ALLOW_PRIVATE", False))
    guard = OPEN if allow_private else Guard(TargetPolicy.PUBLIC, "LOOPR_WEBHOOK_ALLOW_PRIVATE")
    with net.Deadline.after(timeout, guard) as deadline, _session() as session:
        response: requests.Response | None = None
        try:
            response = session.request(
                method,
                url,
                data=body or None,
                headers=headers,
                allow_redirects=False,
                stream=True,  # the body is read by _read_reply, and only so far
                timeout=(deadline.socket_timeout(), deadline.socket_timeout()),
            )
            if deadline.reaped:
                # Cut mid-headers, http.client takes what came as a complete
                # (and possibly 200) response; the receiver never said so.
                raise requests.exceptions.ReadTimeout("deadline passed while reading the response headers")
            reply = _read_reply(response)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a TransportError
            raise _request_error(exc, url, timeout, deadline.reaped) from exc
        finally:
            if response is not None:
                response.close()  # closes the connection; nothing unread is drained
    return judge(response.status_code, response.headers, reply)


def judge(status: int, headers: Any, reply: str) -> Delivery:
    if 200 <= status < 300:
        return Delivery(ok=True, status_code=status, reply=reply)
    if 300 <= status < 400:
        location = headers.get("Location", "")
        where = f" to {clip(location, 200)}" if location else ""
        raise TransportError(
            f"HTTP {status}: the receiver redirected{where}; redirects are not followed, use the final URL",
            permanent=True,
            status_code=status,
            reply=reply,
        )
    if status == 410:
        raise TransportError(
            "HTTP 410 Gone: the receiver says this URL no longer exists",
            permanent=True,
            disable_channel=True,
            status_code=status,
            reply=reply,
        )
    retry_after = parse_retry_after(headers.get("Retry-After")) if status in _HONOURS_RETRY_AFTER else None
    permanent = 400 <= status < 500 and status not in _RETRYABLE_4XX
    raise TransportError(
        f"HTTP {status}{_reason(status)}",
        permanent=permanent,
        status_code=status,
        reply=reply,
        retry_after=retry_after,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT by definition
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _reason(status: int) -> str:
    try:
        return f" {HTTPStatus(status).phrase}"
    except ValueError:
        return ""


def _read_reply(response: requests.Response) -> str:
    chunks: list[bytes] = []
    seen = 0
    try:
        while seen < MAX_BODY_BYTES:
            # read1 returns what has arrived instead of waiting for a full chunk.
            chunk = response.raw.read1(MAX_BODY_BYTES - seen, decode_content=False)
            if not chunk:
                break
            chunks.append(chunk)
            seen += len(chunk)
    except Exception:  # noqa: BLE001 - the status has been said; the body is only a courtesy
        pass
    text = b"".join(chunks)[: MAX_REPLY_CHARS * 4].decode(response.encoding or "utf-8", errors="replace")
    return clip(text)


def _request_error(exc: Exception, url: str, timeout: float, reaped: bool) -> TransportError:
    host = parse_url(url).host or url
    if (refused := net.find_cause(exc, RefusedAddress)) is not None:
        reason = str(refused).split(", which ")[0]
        return TransportError(
            f"{host} resolves to a private address ({reason}); "
            "set LOOPR_WEBHOOK_ALLOW_PRIVATE=true to allow",
            permanent=True,
        )
    if reaped or isinstance(exc, requests.exceptions.Timeout):
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return TransportError(f"could not connect to {host} within {timeout:g} s")
        return TransportError(f"no complete response from {host} within {timeout:g} s")
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                        requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader)):
        return TransportError(f"invalid request: {exc}", permanent=True)
    if isinstance(exc, requests.exceptions.SSLError):
        return TransportError(f"TLS error talking to {host}: {_innermost(exc)}")
    if net.find_cause(exc, ConnectionRefusedError) is not None:
        return TransportError(f"connection refused by {host}")
    if net.find_cause(exc, socket.gaierror) is not None or "Failed to resolve" in str(exc):
        return TransportError(f"could not resolve {host}")
    if isinstance(exc, (requests.exceptions.RequestException, OSError)):
        return TransportError(f"connection to {host} failed: {_innermost(exc)}")
    return TransportError(f"unexpected error: {type(exc).__name__}: {exc}")


def _innermost(exc: BaseException) -> str:
    # requests nests urllib3 nests the socket error; the last one says most.
    last = list(net.exception_chain(exc))[-1]
    return str(last) or type(last).__name__


# Connections that connect within the attempt's deadline, to addresses its
# guard allows (loopr.net.BoundedConnectionMixin).
class _GuardedHTTPConnection(net.BoundedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(net.BoundedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


def _session() -> requests.Session:
    session = requests.Session()
    # No proxies, netrc or CA bundles from the environment: a proxy would
    # also be the address the guard looks at.
    session.trust_env = False
    session.mount("http://", _GuardedAdapter())
    session.mount("https://", _GuardedAdapter())
    return session
