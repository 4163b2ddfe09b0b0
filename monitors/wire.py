"""The probe protocol: what a check carries to a probe node and what a result
carries back, defined once for every producer and consumer.

The dispatcher builds `CheckPayload`s from monitor rows, a probe node reads
them (`parse_check`) and answers with `ResultPayload`s, and ingest validates
those (`parse_result`) into a `Result`. Both travel through the broker as
JSON, so times are ISO-8601 strings on the wire.

Nothing here touches the database or imports a model: a probe node, which
has no database, imports this module. Adding a field to a check is one line
in `CheckSpecFields` (a Monitor column and a `CheckSpec` argument of the same
name) plus its use in the probe.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NotRequired, TypedDict

from django.utils.dateparse import parse_datetime

from loopr.formatting import excerpt

from .choices import ErrorKind


class CheckSpecFields(TypedDict, total=False):
    """What a probe needs to run a check: `CheckSpec`'s arguments, each a
    Monitor column of the same name (a missing one takes CheckSpec's default)."""

    url: str
    timeout: float
    method: str
    headers: dict[str, str]
    body: str
    expected_status: str
    keyword: str
    follow_redirects: bool
    kind: str
    assertions: list[dict[str, Any]]
    tls_verify: bool


class CheckPayload(CheckSpecFields):
    """One check of one monitor's slot, as the dispatcher sends it."""

    monitor: int  # the monitor's id
    slot: str  # the scheduled time, ISO-8601 with offset
    interval: int  # seconds; how stale a held or queued check may get


class ResultPayload(TypedDict):
    """One check's outcome, as a probe node reports it: `ProbeResult.to_dict()`
    plus the check it answers."""

    monitor: int
    slot: str
    ok: bool
    error_kind: str
    error: str
    latency_ms: float | None
    started_at: str
    status_code: int | None
    tls_expires_at: str | None
    lag_ms: NotRequired[float]  # how late the check started after its slot
    impaired: NotRequired[bool]  # the node's canary failed: stored, not counted


class Result(TypedDict):
    """A result payload once validated, keyed by the result table's columns
    so that ingest stores it as it is."""

    monitor_id: int
    scheduled_at: datetime
    checked_at: datetime
    ok: bool
    latency_ms: float | None
    status_code: int | None
    error_kind: str
    error: str
    tls_expires_at: datetime | None
    impaired: bool


SPEC_FIELDS: tuple[str, ...] = tuple(CheckSpecFields.__annotations__)
CHECK_FIELDS: tuple[str, ...] = tuple(CheckPayload.__annotations__)
RESULT_FIELDS: tuple[str, ...] = tuple(Result.__annotations__)

# What a probe may report: `missed` is the central's own record of a check
# that never ran, never a node's to claim.
ERROR_KINDS = frozenset(ErrorKind.values) - {ErrorKind.MISSED}
MAX_ERROR_CHARS = 2000
MAX_ID = 2**63 - 1  # a bigint primary key
MAX_LATENCY_MS = 86_400_000.0  # a day; a check times out long before
# A node's clock may run a little ahead; a result from further in the future
# would move a monitor's last check (and its verdicts) past now.
MAX_SKEW = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class MalformedCheck(ValueError):
    pass


class MalformedResult(ValueError):
    """A result that cannot be stored; `field` names what is wrong with it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def check_payload(monitor: int, slot: datetime, fields: dict[str, Any]) -> CheckPayload:
    """A check of `monitor`'s `slot`; `fields` holds at least CHECK_FIELDS'
    other keys (extra ones are ignored)."""
    payload = {name: fields[name] for name in CHECK_FIELDS if name in fields}
    payload["monitor"] = monitor
    payload["slot"] = slot.isoformat()
    return payload  # type: ignore[return-value]


def parse_check(raw: object) -> CheckPayload:
    """Validate a check a probe node received: identity, url, a numeric
    timeout and object headers; other spec fields are the probe's to judge."""
    if not isinstance(raw, dict):
        raise MalformedCheck(f"a check must be an object, got {type(raw).__name__}")
    try:
        monitor, slot = raw["monitor"], raw["slot"]
        if not isinstance(monitor, int) or not isinstance(slot, str) or "url" not in raw:
            raise MalformedCheck("monitor (int), slot (str) and url are required")
        check = {name: raw[name] for name in CHECK_FIELDS if name in raw}
        check["timeout"] = float(check.get("timeout", 10))
        if not isinstance(check.get("headers", {}), dict):
            raise MalformedCheck("headers must be an object")
        return check  # type: ignore[return-value]
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, MalformedCheck):
            raise
        raise MalformedCheck(f"{type(exc).__name__}: {exc}") from exc


def result_payload(monitor: int, slot: str, lag_ms: float, probe_result: dict[str, Any]) -> ResultPayload:
    return {**probe_result, "monitor": monitor, "slot": slot, "lag_ms": lag_ms}  # type: ignore[typeddict-item]


def parse_result(raw: object, now: datetime | None = None) -> Result:
    """Validate one result from a probe node into column values.

    The node is not trusted: every field is checked for its type (no
    booleans for numbers, no lists for strings), numbers are finite and in
    range, NUL bytes (which PostgreSQL refuses in text) are stripped, times
    are normalised to UTC and must fall within `EARLIEST`..now + `MAX_SKEW`
    (a certificate's expiry, within `EARLIEST`..`LATEST`). `MalformedResult`
    names the field, with a bounded excerpt of the value.
    """
    if not isinstance(raw, dict):
        raise MalformedResult("result", f"expected an object, got {type(raw).__name__}")
    now = now or datetime.now(UTC)
    monitor = _integer(raw, "monitor", 1, MAX_ID)
    ok = raw.get("ok")
    if not isinstance(ok, bool):
        raise MalformedResult("ok", f"expected a boolean, got {excerpt(ok, 40)}")
    latency = _number(raw, "latency_ms", 0.0, MAX_LATENCY_MS)
    kind = raw.get("error_kind") or (ErrorKind.OK if ok else ErrorKind.INTERNAL)
    if not isinstance(kind, str) or kind not in ERROR_KINDS:
        raise MalformedResult("error_kind", f"unknown kind {excerpt(kind, 40)}")
    error = raw.get("error") or ""
    if not isinstance(error, str):
        raise MalformedResult("error", f"expected a string, got {type(error).__name__}")
    impaired = raw.get("impaired", False)
    if not isinstance(impaired, bool):
        raise MalformedResult("impaired", f"expected a boolean, got {excerpt(impaired, 40)}")
    latest_check = now + MAX_SKEW
    return {
        "monitor_id": monitor,
        "scheduled_at": _utc(raw, "slot", EARLIEST, latest_check),
        "checked_at": _utc(raw, "started_at", EARLIEST, latest_check),
        "ok": ok,
        "latency_ms": latency,
        "status_code": _integer(raw, "status_code", 0, 999, required=False),
        "error_kind": kind,
        "error": error[: MAX_ERROR_CHARS * 2].replace("\x00", "")[:MAX_ERROR_CHARS],
        "tls_expires_at": _utc(raw, "tls_expires_at", EARLIEST, LATEST, required=False),
        "impaired": impaired,
    }


def _integer(raw: dict, name: str, low: int, high: int, required: bool = True) -> int | None:
    value = raw.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MalformedResult(name, f"expected an integer from {low} to {high}, got {excerpt(value, 40)}")
    return value


def _number(raw: dict, name: str, low: float, high: float) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    # NaN and the infinities fail the range test (NaN compares false).
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise MalformedResult(name, f"expected a finite number from {low:g} to {high:g}, got {excerpt(value, 40)}")
    return float(value)


def _utc(raw: dict, name: str, earliest: datetime, latest: datetime, required: bool = True) -> datetime | None:
    value = raw.get(name)
    if value is None and not required:
        return None
    parsed = None
    if isinstance(value, str) and len(value) <= 64 and value.isascii() and value.isprintable():
        try:
            parsed = parse_datetime(value)
        except ValueError:  # well formed but not a date, e.g. month 13
            parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise MalformedResult(name, f"expected an ISO-8601 time with offset, got {excerpt(value, 40)}")
    try:
        # An offset beyond PostgreSQL's ±15:59 is refused by the database;
        # in UTC it is just a time. A year-1 time with a negative offset
        # overflows here instead of in the database.
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        raise MalformedResult(name, f"out of range: {excerpt(value, 40)}") from None
    if not earliest <= parsed <= latest:
        raise MalformedResult(name, f"{parsed.isoformat()} is outside {earliest.date()}..{latest.date()}")
    return parsed
