"""What a failed HTTP check reports: the exception requests raised, turned
into an ErrorKind and a message a person can act on, with the certificate's
expiry whenever one was seen.
"""

from __future__ import annotations

import socket
import ssl
from datetime import datetime, timezone
from http.client import HTTPException, RemoteDisconnected

import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util.url import parse_url

from loopr.addresses import RefusedAddress
from loopr.net import exception_chain, find_cause
from monitors.choices import ErrorKind

from ..base import CheckClock, CheckSpec, ProbeResult, describe_os_error, format_seconds
from .session import MAX_REDIRECTS, CheckDeadline
from .tls import certificate_expiry, peer_certificate_unverified


def failure(
    exc: Exception,
    spec: CheckSpec,
    clock: CheckClock,
    deadline: CheckDeadline,
    status_code: int | None,
) -> ProbeResult:
    kind, error = classify(exc, spec, reaped=deadline.reaped)
    expiry = None
    if kind == ErrorKind.TLS:
        verify_error = find_cause(exc, ssl.SSLCertVerificationError)
        der = peer_certificate_unverified(*_host_port(exc, spec), deadline) if verify_error else None
        if der:
            expiry = certificate_expiry(der)
            error = _tls_message(verify_error, error, expiry)
    elif deadline.peer_der:  # the response came, its body did not
        expiry = certificate_expiry(deadline.peer_der)
    return clock.result(kind, error, status_code=status_code, tls_expires_at=expiry)


def classify(exc: Exception, spec: CheckSpec, reaped: bool) -> tuple[str, str]:
    """Map an exception from requests/urllib3 onto an ErrorKind and message.

    requests wraps urllib3 which wraps the socket error, so the whole chain
    is searched, most specific first.
    """
    if (refused := find_cause(exc, RefusedAddress)) is not None:
        # The target policy, at connect time: the first hop or a redirect's.
        return ErrorKind.INVALID, f"{_host_port(exc, spec)[0]}: {refused}"
    if reaped or _is_timeout(exc):
        if _is_connect_timeout(exc):
            return ErrorKind.TIMEOUT, f"no connection within {format_seconds(spec.timeout)} s"
        return ErrorKind.TIMEOUT, timeout_message(spec)
    host, port = _host_port(exc, spec)
    if (os_error := find_cause(exc, socket.gaierror)) is not None:
        return describe_os_error(os_error, host, port)
    if find_cause(exc, NameResolutionError) is not None:
        return ErrorKind.DNS, f"DNS lookup failed for {host}"
    for os_error in exception_chain(exc):
        if isinstance(os_error, OSError) and not isinstance(os_error, TimeoutError):
            kind, message = describe_os_error(os_error, host, port)
            if kind in (ErrorKind.REFUSED, ErrorKind.UNREACHABLE):
                return kind, message
    if (ssl_error := find_cause(exc, ssl.SSLError)) is not None:
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
    if find_cause(exc, RemoteDisconnected) is not None:
        return ErrorKind.CONNECTION, "server closed the connection without a response"
    if find_cause(exc, ConnectionResetError) is not None:
        return ErrorKind.CONNECTION, "connection reset by the server"
    if isinstance(exc, (requests.exceptions.RequestException, ProtocolError, HTTPException)):
        return ErrorKind.CONNECTION, _short(exc)
    if isinstance(exc, OSError):
        return ErrorKind.CONNECTION, _short(exc)
    return ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}"


def timeout_message(spec: CheckSpec) -> str:
    return f"no complete response within {format_seconds(spec.timeout)} s"


def _is_timeout(exc: BaseException) -> bool:
    timeouts = (TimeoutError, ReadTimeoutError, requests.exceptions.Timeout)
    return _is_connect_timeout(exc) or find_cause(exc, timeouts) is not None


def _is_connect_timeout(exc: BaseException) -> bool:
    # NewConnectionError subclasses ConnectTimeoutError for historical reasons
    # but means the connection failed, not that it timed out.
    return any(
        isinstance(cause, ConnectTimeoutError) and not isinstance(cause, NewConnectionError)
        for cause in exception_chain(exc)
    )


def _host_port(exc: Exception, spec: CheckSpec) -> tuple[str, int | None]:
    # After redirects the failing URL may not be the configured one.
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None) or spec.url
    parts = parse_url(url)
    default_port = 443 if parts.scheme == "https" else 80
    return parts.host or "", parts.port or default_port


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
