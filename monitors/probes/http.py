"""HTTP(S) probe.

What a check measures is what a new visitor sees, so every check opens fresh
connections; what it reuses is everything that only costs CPU (one Session and
adapter per thread, one SSLContext per process).

The timeout is a deadline for the whole check. `requests` timeouts apply per
socket operation, so a server trickling one byte at a time would never trip
them; a per-process reaper thread shuts down the sockets of any check whose
deadline has passed.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import logging
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.client import HTTPException, RemoteDisconnected
from typing import Any

import certifi
import requests
from cryptography import x509
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util import ssl_ as urllib3_ssl
from urllib3.util.connection import allowed_gai_family
from urllib3.util.url import parse_url

from monitors.choices import ErrorKind

from .base import (
    CheckClock,
    CheckSpec,
    ProbeResult,
    describe_os_error,
    format_seconds,
    parse_expected_status,
    status_matches,
)

log = logging.getLogger(__name__)

USER_AGENT = "Loopr/0.1 (+uptime monitor)"
MAX_REDIRECTS = 5
MAX_BODY_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024

# Methods whose body we never send, even when one is configured.
_BODYLESS_METHODS = frozenset({"GET", "HEAD"})
_METHOD = re.compile(r"^[A-Z][A-Z0-9_-]*$")
_SCHEMES = frozenset({"http", "https"})


# --- TLS -------------------------------------------------------------------


class _SharedSSLContext(ssl.SSLContext):
    """An SSLContext that many threads wrap sockets with at once.

    urllib3 calls set_alpn_protocols() on the context for every connection.
    On a shared context that frees and replaces OpenSSL's copy while another
    thread may be reading it in SSL_new(), so we skip calls that change nothing.
    """

    def set_alpn_protocols(self, alpn_protocols: Any) -> None:
        protocols = tuple(alpn_protocols)
        if getattr(self, "_loopr_alpn", None) != protocols:
            super().set_alpn_protocols(protocols)
            self._loopr_alpn = protocols


def build_ssl_context(
    cafile: str | None = None, cadata: str | bytes | None = None
) -> ssl.SSLContext:
    """A verifying client context trusting certifi's bundle, or the CAs given."""
    context = _SharedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None and cadata is None:
        cafile = certifi.where()
    context.load_verify_locations(cafile=cafile, cadata=cadata)
    context.set_alpn_protocols(urllib3_ssl.ALPN_PROTOCOLS)
    return context


_ssl_context: ssl.SSLContext | None = None
_ssl_context_lock = threading.Lock()


def get_ssl_context() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        with _ssl_context_lock:
            if _ssl_context is None:
                _ssl_context = build_ssl_context()
    return _ssl_context


def set_ssl_context(context: ssl.SSLContext | None) -> None:
    """Trust what `context` trusts for every later check; None restores certifi.

    Meant for tests and for a worker that must trust a private CA. The context
    is part of urllib3's pool key, so no Session needs rebuilding.
    """
    global _ssl_context
    _ssl_context = context


@functools.cache
def _unverified_context() -> ssl.SSLContext:
    # Only used to read the certificate of a server that failed verification.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@functools.lru_cache(maxsize=1024)
def certificate_expiry(der: bytes) -> datetime:
    # Cached by certificate: most checks hit a host whose cert we parsed before.
    return x509.load_der_x509_certificate(der).not_valid_after_utc


# --- deadline enforcement --------------------------------------------------


class _Deadline:
    """One check's deadline and the sockets to cut when it passes.

    The reaper thread only ever calls shutdown(), never close(): closing from
    another thread could close a descriptor number that the checking thread
    has already reused. It shuts down our own dup() of each socket, which
    stays valid even after TLS wrapping detaches the original socket object.
    """

    __slots__ = ("expires", "reaped", "peer_der", "_socks", "_lock", "_done")

    def __init__(self, clock: CheckClock) -> None:
        self.expires = clock.expires
        self.reaped = False
        self.peer_der: bytes | None = None  # certificate of the latest TLS connection
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = False

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
            if self.reaped:
                _cut(dup)

    def reap(self) -> None:
        with self._lock:
            if self._done:
                return
            self.reaped = True
            for sock in self._socks:
                _cut(sock)

    def finish(self) -> None:
        with self._lock:
            self._done = True
            socks, self._socks = self._socks, []
        for sock in socks:
            sock.close()
        # The reaper's heap keeps this object until its deadline; keep it small.
        self.peer_der = None


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet or already gone: nothing left to interrupt


# Condition.wait() rejects huge timeouts; waking up now and then is harmless.
_MAX_REAPER_SLEEP = 3600.0


class _Reaper:
    """A heap of deadlines and one daemon thread that fires them.

    Finished checks stay in the heap until their deadline and are then
    dropped; removing them early would cost more than it saves.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: _Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline.expires, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="loopr-probe-reaper", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._cond.notify()  # sooner than the reaper is sleeping for

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        deadline = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(min(wait, _MAX_REAPER_SLEEP))
            try:
                deadline.reap()
            except Exception:  # noqa: BLE001 - the thread must outlive any one check
                log.exception("could not cut a check at its deadline")


_reaper = _Reaper()
# A forked worker inherits the heap but not the thread; start afresh.
os.register_at_fork(after_in_child=_reaper._reset)


# --- urllib3 plumbing ------------------------------------------------------

_local = threading.local()


def _current_deadline() -> _Deadline | None:
    return getattr(_local, "deadline", None)


class _WatchedConnectionMixin:
    """Opens sockets within the check's deadline and hands them to the reaper."""

    def _new_conn(self) -> socket.socket:
        deadline = _current_deadline()
        if deadline is None:  # used outside run_check: behave like urllib3
            return super()._new_conn()  # type: ignore[misc]
        sock = _open_socket(self, deadline)  # type: ignore[arg-type]
        deadline.watch(sock)
        return sock


def _open_socket(conn: HTTPConnection, deadline: _Deadline) -> socket.socket:
    # urllib3's create_connection gives every address the full timeout; here
    # each attempt gets only what is left of the check's deadline.
    host = conn._dns_host.strip("[]")  # noqa: SLF001 - the host urllib3 resolves
    try:
        addresses = socket.getaddrinfo(host, conn.port, allowed_gai_family(), socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    except UnicodeError:
        raise LocationParseError(f"'{host}', label empty or too long") from None

    last_error: OSError | None = None
    for family, kind, proto, _, address in addresses:
        remaining = deadline.remaining()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(remaining)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        sys.audit("http.client.connect", conn, conn.host, conn.port)
        return sock

    if last_error is None or isinstance(last_error, TimeoutError):
        raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out.")
    raise NewConnectionError(
        conn, f"Failed to establish a new connection: {last_error}"
    ) from last_error


class _ProbeHTTPConnection(_WatchedConnectionMixin, HTTPConnection):
    pass


class _ProbeHTTPSConnection(_WatchedConnectionMixin, HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        deadline = _current_deadline()
        if deadline is not None:
            # Read now: once the response is released the socket is gone.
            deadline.peer_der = self.sock.getpeercert(binary_form=True)


class _NoReuseMixin:
    """Closes connections instead of pooling them: each check starts fresh,
    even against a server that ignores `Connection: close`."""

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn.close()
        super()._put_conn(None)  # type: ignore[misc]  # keep the pool's slot


class _ProbeHTTPPool(_NoReuseMixin, HTTPConnectionPool):
    ConnectionCls = _ProbeHTTPConnection


class _ProbeHTTPSPool(_NoReuseMixin, HTTPSConnectionPool):
    ConnectionCls = _ProbeHTTPSConnection


class _ProbeAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _ProbeHTTPPool,
            "https": _ProbeHTTPSPool,
        }

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, _ = super().build_connection_pool_key_attributes(request, verify, cert)
        # Always verify, with the shared context; urllib3 drops these for http.
        return host_params, {"ssl_context": get_ssl_context(), "cert_reqs": "CERT_REQUIRED"}

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # requests would set ca_certs to certifi's path here, and urllib3 then
        # calls load_verify_locations() for every new connection (~15 ms).
        # The shared context already holds the CAs.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        deadline = _current_deadline()
        if deadline is not None:
            # Redirect hops get only what is left; the floor avoids urllib3
            # treating 0 as "non-blocking" (the reaper has it covered).
            kwargs["timeout"] = max(deadline.remaining(), 0.001)
        return super().send(request, **kwargs)


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        # No netrc, proxy or CA-bundle lookups from the environment per request.
        session.trust_env = False
        session.max_redirects = MAX_REDIRECTS
        session.headers["User-Agent"] = USER_AGENT
        session.headers["Connection"] = "close"
        # Pools never hold a connection (see _NoReuseMixin), so one slot each
        # is enough, and building a pool then costs ~20 us instead of ~35 us.
        adapter = _ProbeAdapter(pool_connections=32, pool_maxsize=1, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _local.session = session
    return session


# --- the check -------------------------------------------------------------


def check_http(spec: CheckSpec, clock: CheckClock) -> ProbeResult:
    problem = _spec_problem(spec)
    if problem:
        return clock.invalid(problem)

    session = _session()
    deadline = _Deadline(clock)
    _local.deadline = deadline
    _reaper.add(deadline)
    response: requests.Response | None = None
    try:
        response = _send(session, spec)
        result = _judge(response, spec, clock, deadline)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a result
        status_code = response.status_code if response is not None else None
        result = _failure(exc, spec, clock, deadline, status_code)
    finally:
        if response is not None:
            response.close()
        _local.deadline = None
        deadline.finish()
        # Cookies must not leak from one monitor's check into the next.
        session.cookies.clear()
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


def _send(session: requests.Session, spec: CheckSpec) -> requests.Response:
    method = spec.method.upper()
    body = spec.body.encode() if spec.body and method not in _BODYLESS_METHODS else None
    headers = CaseInsensitiveDict(session.headers)
    headers.update(spec.headers)
    # Preparing the request directly skips Session.request's merging of
    # session params, hooks, auth, cookies and environment settings, none of
    # which a probe uses; that merging was ~15% of a check's CPU time.
    request = requests.PreparedRequest()
    request.prepare(method=method, url=spec.url, headers=headers, data=body)
    return session.send(
        request,
        stream=True,  # the body is read only when a keyword needs it
        allow_redirects=spec.follow_redirects,
        timeout=spec.timeout,  # replaced per hop by _ProbeAdapter.send
        verify=True,
        cert=None,
        proxies={},
    )


def _judge(
    response: requests.Response, spec: CheckSpec, clock: CheckClock, deadline: _Deadline
) -> ProbeResult:
    code = response.status_code
    expiry = certificate_expiry(deadline.peer_der) if deadline.peer_der else None
    if not status_matches(code, parse_expected_status(spec.expected_status)):
        kind = ErrorKind.STATUS
        error = f"HTTP {code}, expected {spec.expected_status.strip()}"
    elif spec.keyword:
        kind, error = _look_for_keyword(response, spec.keyword)
    else:
        kind, error = ErrorKind.OK, ""
    if deadline.reaped:
        # A cut connection can look like a short but complete response.
        kind, error = ErrorKind.TIMEOUT, _timeout_message(spec)
    return clock.result(kind, error, status_code=code, tls_expires_at=expiry)


def _look_for_keyword(response: requests.Response, keyword: str) -> tuple[str, str]:
    # read1 returns what has arrived instead of waiting for a full chunk, so a
    # keyword early in a slow or endless body is found as soon as it arrives.
    read = functools.partial(response.raw.read1, decode_content=True)
    found, seen, truncated = find_keyword(read, keyword.encode())
    if found:
        return ErrorKind.OK, ""
    if truncated:
        return ErrorKind.KEYWORD, f"keyword {keyword!r} not found in the first {seen} bytes"
    return ErrorKind.KEYWORD, f"keyword {keyword!r} not found in the response body ({seen} bytes)"


def find_keyword(
    read: Callable[[int], bytes], keyword: bytes, limit: int = MAX_BODY_BYTES
) -> tuple[bool, int, bool]:
    """Read chunks with `read(max_bytes)` until keyword turns up, EOF or `limit`.

    Returns (found, bytes_read, truncated). The last len(keyword) - 1 bytes of
    each chunk are kept so a keyword split across two chunks is still found.
    """
    overlap = len(keyword) - 1
    tail = b""
    seen = 0
    while seen < limit:
        chunk = read(min(CHUNK_BYTES, limit - seen))
        if not chunk:
            return False, seen, False
        seen += len(chunk)
        window = tail + chunk
        if keyword in window:
            return True, seen, False
        tail = window[-overlap:] if overlap else b""
    return False, seen, True


def _failure(
    exc: Exception,
    spec: CheckSpec,
    clock: CheckClock,
    deadline: _Deadline,
    status_code: int | None,
) -> ProbeResult:
    kind, error = _classify(exc, spec, reaped=deadline.reaped)
    expiry = None
    if kind == ErrorKind.TLS:
        verify_error = _find(exc, ssl.SSLCertVerificationError)
        der = _peer_certificate_anyway(exc, spec, deadline) if verify_error else None
        if der:
            expiry = certificate_expiry(der)
            error = _tls_message(verify_error, error, expiry)
    elif deadline.peer_der:  # the response came, its body did not
        expiry = certificate_expiry(deadline.peer_der)
    return clock.result(kind, error, status_code=status_code, tls_expires_at=expiry)


def _classify(exc: Exception, spec: CheckSpec, reaped: bool) -> tuple[str, str]:
    """Map an exception from requests/urllib3 onto an ErrorKind and message.

    requests wraps urllib3 which wraps the socket error, so the whole chain
    is searched, most specific first.
    """
    if reaped or _is_timeout(exc):
        if _is_connect_timeout(exc):
            return ErrorKind.TIMEOUT, f"no connection within {format_seconds(spec.timeout)} s"
        return ErrorKind.TIMEOUT, _timeout_message(spec)
    host, port = _host_port(exc, spec)
    if (os_error := _find(exc, socket.gaierror)) is not None:
        return describe_os_error(os_error, host, port)
    if _find(exc, NameResolutionError) is not None:
        return ErrorKind.DNS, f"DNS lookup failed for {host}"
    for os_error in _chain(exc):
        if isinstance(os_error, OSError) and not isinstance(os_error, TimeoutError):
            kind, message = describe_os_error(os_error, host, port)
            if kind in (ErrorKind.REFUSED, ErrorKind.UNREACHABLE):
                return kind, message
    if (ssl_error := _find(exc, ssl.SSLError)) is not None:
        return ErrorKind.TLS, _ssl_error_message(ssl_error)
    if isinstance(exc, requests.exceptions.SSLError):
        return ErrorKind.TLS, _short(exc)
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return ErrorKind.REDIRECTS, f"more than {MAX_REDIRECTS} redirects"
    if isinstance(
        exc,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidHeader,
            LocationParseError,
        ),
    ):
        return ErrorKind.INVALID, _short(exc)
    if _find(exc, RemoteDisconnected) is not None:
        return ErrorKind.CONNECTION, "server closed the connection without a response"
    if _find(exc, ConnectionResetError) is not None:
        return ErrorKind.CONNECTION, "connection reset by the server"
    if isinstance(exc, (requests.exceptions.RequestException, ProtocolError, HTTPException)):
        return ErrorKind.CONNECTION, _short(exc)
    if isinstance(exc, OSError):
        return ErrorKind.CONNECTION, _short(exc)
    return ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}"


def _is_timeout(exc: BaseException) -> bool:
    timeouts = (TimeoutError, ReadTimeoutError, requests.exceptions.Timeout)
    return _is_connect_timeout(exc) or _find(exc, timeouts) is not None


def _is_connect_timeout(exc: BaseException) -> bool:
    # NewConnectionError subclasses ConnectTimeoutError for historical reasons
    # but means the connection failed, not that it timed out.
    return any(
        isinstance(cause, ConnectTimeoutError) and not isinstance(cause, NewConnectionError)
        for cause in _chain(exc)
    )


def _timeout_message(spec: CheckSpec) -> str:
    return f"no complete response within {format_seconds(spec.timeout)} s"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """exc and everything it wraps: causes, contexts, urllib3 reasons, args."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args)
        stack.extend(item for item in linked if isinstance(item, BaseException))


def _find(exc: BaseException, kind: type[Any]) -> Any:
    return next((cause for cause in _chain(exc) if isinstance(cause, kind)), None)


def _host_port(exc: Exception, spec: CheckSpec) -> tuple[str, int | None]:
    # After redirects the failing URL may not be the configured one.
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None) or spec.url
    parts = parse_url(url)
    default_port = 443 if parts.scheme == "https" else 80
    return parts.host or "", parts.port or default_port


def _peer_certificate_anyway(exc: Exception, spec: CheckSpec, deadline: _Deadline) -> bytes | None:
    """One more handshake without verification, only to read the certificate."""
    host, port = _host_port(exc, spec)
    host = host.strip("[]")
    remaining = deadline.remaining()
    if not host or remaining <= 0:
        return None
    try:
        with socket.create_connection((host, port), timeout=remaining) as raw:
            deadline.watch(raw)
            server_name = None if _is_ip(host) else host
            with _unverified_context().wrap_socket(raw, server_hostname=server_name) as tls:
                return tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None


def _is_ip(host: str) -> bool:
    return urllib3_ssl.is_ipaddress(host)


def _ssl_error_message(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return str(error.verify_message)
    return f"TLS handshake failed: {error.reason or error}"


def _tls_message(
    verify_error: ssl.SSLCertVerificationError, fallback: str, expiry: datetime
) -> str:
    message = str(verify_error.verify_message or fallback)
    tense = "expired" if expiry <= datetime.now(timezone.utc) else "expires"
    return f"{message} ({tense} {expiry.date().isoformat()})"


def _short(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
