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

from datetime import datetime
from typing import Any, NotRequired, TypedDict

from django.utils.dateparse import parse_datetime

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

ERROR_KINDS = frozenset(ErrorKind.values)
MAX_ERROR_CHARS = 2000


class MalformedCheck(ValueError):
    pass


class MalformedResult(ValueError):
    pass


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


def parse_result(raw: object) -> Result:
    """Validate one result from a probe node into column values."""
    if not isinstance(raw, dict):
        raise MalformedResult(f"expected an object, got {type(raw).__name__}")
    monitor, ok = raw.get("monitor"), raw.get("ok")
    if not isinstance(monitor, int) or isinstance(monitor, bool) or monitor <= 0:
        raise MalformedResult(f"monitor: expected a positive integer, got {monitor!r}")
    if not isinstance(ok, bool):
        raise MalformedResult(f"ok: expected a boolean, got {ok!r}")
    latency, code = raw.get("latency_ms"), raw.get("status_code")
    if latency is not None and (not isinstance(latency, (int, float)) or latency < 0):
        raise MalformedResult(f"latency_ms: expected a non-negative number, got {latency!r}")
    if code is not None and (not isinstance(code, int) or not 0 <= code <= 999):
        raise MalformedResult(f"status_code: expected an HTTP status, got {code!r}")
    kind = raw.get("error_kind") or (ErrorKind.OK if ok else ErrorKind.INTERNAL)
    if kind not in ERROR_KINDS:
        raise MalformedResult(f"error_kind: unknown kind {kind!r}")
    return {
        "monitor_id": monitor,
        "scheduled_at": _aware(raw.get("slot"), "slot"),
        "checked_at": _aware(raw.get("started_at"), "started_at"),
        "ok": ok,
        "latency_ms": float(latency) if latency is not None else None,
        "status_code": code,
        "error_kind": kind,
        "error": str(raw.get("error") or "")[:MAX_ERROR_CHARS],
        "tls_expires_at": _aware(raw.get("tls_expires_at"), "tls_expires_at", required=False),
        "impaired": raw.get("impaired") is True,
    }


def _aware(value: object, name: str, required: bool = True) -> datetime | None:
    if value is None and not required:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        raise MalformedResult(f"{name}: expected an ISO-8601 time with offset, got {value!r}")
    return parsed
