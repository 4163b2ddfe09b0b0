"""What every probe takes and returns, and the small rules they share.

Probes never touch the database: a `CheckSpec` carries everything a check
needs and a `ProbeResult` is plain data that travels through the broker as
JSON (`to_dict`; the central side reads it back with `monitors.wire.parse_result`).
"""

from __future__ import annotations

import errno
import functools
import re
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from loopr.addresses import Guard
from monitors.choices import ErrorKind

# Long error strings (a server's HTML in an exception, say) are cut so a
# result stays small on the broker and fits any sensible column.
MAX_ERROR_LENGTH = 500

UNREACHABLE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})

_STATUS_PART = re.compile(r"^(\d{3})(?:\s*-\s*(\d{3}))?$")
_STATUS_CLASS = re.compile(r"^([1-5])xx$", re.IGNORECASE)


@dataclass(frozen=True)
class CheckSpec:
    url: str
    timeout: float  # seconds: the deadline for the whole check, not per step
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    expected_status: str = "200-399"  # e.g. "200-299,301,418" or "2xx"
    keyword: str = ""
    follow_redirects: bool = True
    kind: str = ""  # a MonitorKind value; "" (a check queued before kinds): from the URL's scheme
    assertions: list[dict] = field(default_factory=list)  # see assertions.py
    tls_verify: bool = True  # false: a self-signed or private-CA certificate is not a failure
    # The addresses the check may connect to (loopr.addresses.TargetPolicy):
    # the probe node's LOOPR_MONITOR_TARGETS, never from the wire.
    targets: str = "any"

    @property
    def guard(self) -> Guard:
        return Guard.for_monitors(self.targets)


@dataclass
class ProbeResult:
    ok: bool
    error_kind: str  # an ErrorKind value
    error: str  # human-readable, "" when ok
    latency_ms: float | None  # wall time of the check
    started_at: datetime  # aware UTC
    status_code: int | None = None
    tls_expires_at: datetime | None = None  # aware UTC, when a certificate was seen

    def to_dict(self) -> dict[str, Any]:
        # Celery's JSON serializer knows no datetimes, so they go as ISO-8601.
        return {
            "ok": self.ok,
            "error_kind": self.error_kind,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "started_at": self.started_at.isoformat(),
            "status_code": self.status_code,
            "tls_expires_at": _iso_or_none(self.tls_expires_at),
        }


class CheckClock:
    """When a check began and how much of its deadline is left.

    Monotonic time for the deadline and latency (wall-clock jumps must not
    shorten or stretch a check); UTC wall time only for `started_at`.
    """

    __slots__ = ("started_at", "start", "expires", "timeout")

    def __init__(self, timeout: float) -> None:
        self.started_at = datetime.now(timezone.utc)
        self.start = time.monotonic()
        self.timeout = timeout
        self.expires = self.start + timeout

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def elapsed_ms(self) -> float:
        return round((time.monotonic() - self.start) * 1000, 1)

    def result(
        self,
        kind: str,
        error: str = "",
        *,
        status_code: int | None = None,
        tls_expires_at: datetime | None = None,
        measured: bool = True,
    ) -> ProbeResult:
        return ProbeResult(
            ok=kind == ErrorKind.OK,
            error_kind=str(kind),
            error=error[:MAX_ERROR_LENGTH],
            latency_ms=self.elapsed_ms() if measured else None,
            started_at=self.started_at,
            status_code=status_code,
            tls_expires_at=tls_expires_at,
        )

    def invalid(self, error: str) -> ProbeResult:
        # Nothing went over the network, so there is no latency to report.
        return self.result(ErrorKind.INVALID, error, measured=False)


def parse_expected_status(text: str) -> tuple[tuple[int, int], ...]:
    """Parse "200-299,301,418" or "2xx" into inclusive (low, high) ranges."""
    # Cached: the same few strings are parsed for every check.
    return _parse_expected_status(text.strip())


@functools.lru_cache(maxsize=256)
def _parse_expected_status(text: str) -> tuple[tuple[int, int], ...]:
    if not text:
        raise ValueError("expected status is empty; use e.g. 200-399")
    ranges: list[tuple[int, int]] = []
    for raw_part in text.split(","):
        part = raw_part.strip()
        if class_match := _STATUS_CLASS.match(part):
            low = int(class_match.group(1)) * 100
            ranges.append((low, low + 99))
            continue
        match = _STATUS_PART.match(part)
        if match is None:
            raise ValueError(
                f"{part!r} is not a status code, a range like 200-299 or a class like 2xx"
            )
        low = int(match.group(1))
        high = int(match.group(2) or low)
        for code in (low, high):
            if not 100 <= code <= 599:
                raise ValueError(f"status code {code} is outside 100-599")
        if low > high:
            raise ValueError(f"status range {low}-{high} runs backwards")
        ranges.append((low, high))
    return tuple(ranges)


def status_matches(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


def describe_os_error(exc: OSError, host: str, port: int | None) -> tuple[str, str]:
    """Kind and message for a failure to resolve or connect."""
    where = f"{host}:{port}" if port is not None else host
    if isinstance(exc, socket.gaierror):
        return ErrorKind.DNS, f"DNS lookup failed for {host}: {exc.strerror or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return ErrorKind.REFUSED, f"connection refused by {where}"
    if exc.errno in UNREACHABLE_ERRNOS:
        return ErrorKind.UNREACHABLE, f"{where} is unreachable: {exc.strerror}"
    if isinstance(exc, TimeoutError):
        return ErrorKind.TIMEOUT, f"no connection to {where} in time"
    return ErrorKind.CONNECTION, f"could not connect to {where}: {exc.strerror or exc}"


def format_seconds(seconds: float) -> str:
    # "2.0 s" reads better than "2 s" next to "0.5 s"; keep finer values whole.
    return f"{seconds:.1f}" if round(seconds, 1) == seconds else f"{seconds:g}"


def _iso_or_none(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
