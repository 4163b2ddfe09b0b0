"""Typed assertions: `{"source", "property", "op", "value"}` conditions on
what a check saw, all of which must hold.

The model validates them with `assertion_problems` when a monitor is saved
(each problem names the assertion's index and field); a probe evaluates them
with `failed_assertion` over an `Observation` and reports the first that
fails, named: `json $.status: expected eq "ok", got "degraded"`.

Patterns run on google-re2 (linear time: no pattern can hang a probe) and
JSONPath is RFC 9535's, through python-jsonpath in strict mode.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonpath
import re2

MAX_ASSERTIONS = 20
MAX_TEXT = 1000  # a value or a pattern

STATUS, HEADER, BODY, JSON, LATENCY, TLS_DAYS, DNS = "status", "header", "body", "json", "latency", "tls_days", "dns"
SOURCES = (STATUS, HEADER, BODY, JSON, LATENCY, TLS_DAYS, DNS)
ORDERING = ("lt", "le", "gt", "ge")
OPS = ("eq", "ne", *ORDERING, "contains", "not_contains", "matches", "exists", "in")

# What each source can be asked: a number is ordered, text is searched, an
# answer's records form a set.
_OPS_OF_SOURCE = {
    STATUS: ("eq", "ne", *ORDERING, "in"),
    HEADER: ("eq", "ne", "contains", "not_contains", "matches", "exists", "in"),
    BODY: ("eq", "ne", "contains", "not_contains", "matches"),
    JSON: OPS,
    LATENCY: ("eq", "ne", *ORDERING),
    TLS_DAYS: ("eq", "ne", *ORDERING),
    DNS: ("eq", "ne", "contains", "not_contains", "matches"),
}
# What each kind of check sees (MonitorKind values): a heartbeat is pinged, not checked.
ASSERTABLE_BY_KIND = {
    "http": (STATUS, HEADER, BODY, JSON, LATENCY, TLS_DAYS),
    "tcp": (LATENCY,),
    "icmp": (LATENCY,),
    "dns": (DNS, LATENCY),
    "heartbeat": (),
}
_NAMED_BY_PROPERTY = (HEADER, JSON)
_FIELDS = frozenset({"source", "property", "op", "value"})

_JSONPATH = jsonpath.JSONPathEnvironment(strict=True)
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is a validation error, not log noise

_MISSING = object()


@dataclass
class Observation:
    """What a check saw, as far as its kind sees anything."""

    status_code: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive
    body: str | None = None
    latency_ms: float | None = None
    tls_days: float | None = None
    dns_records: list[str] | None = None


# --- validation ------------------------------------------------------------


def assertion_problems(assertions: object) -> list[str]:
    """Every problem with a list of assertions, each naming `[index].field`."""
    if not isinstance(assertions, list):
        return ["must be a list of {source, property, op, value} objects"]
    if len(assertions) > MAX_ASSERTIONS:
        return [f"at most {MAX_ASSERTIONS} assertions"]
    problems = []
    for index, assertion in enumerate(assertions):
        problem = _problem(assertion)
        if problem:
            problems.append(f"[{index}].{problem}")
    return problems


def _problem(assertion: object) -> str:
    if not isinstance(assertion, dict):
        return "source: each assertion is an object with source, op and (mostly) value"
    unknown = sorted(set(map(str, assertion)) - _FIELDS)
    if unknown:
        return f"{unknown[0]}: unknown field; use source, property, op, value"
    source, op = assertion.get("source"), assertion.get("op")
    if source not in SOURCES:
        return f"source: unknown source {source!r}; one of {', '.join(SOURCES)}"
    if op not in OPS:
        return f"op: unknown op {op!r}; one of {', '.join(OPS)}"
    if op not in _OPS_OF_SOURCE[source]:
        return f"op: {op!r} does not fit source {source!r}; use one of {', '.join(_OPS_OF_SOURCE[source])}"
    return _property_problem(source, assertion.get("property")) or _value_problem(source, op, assertion)


def _property_problem(source: str, prop: object) -> str:
    if source not in _NAMED_BY_PROPERTY:
        return "" if prop in (None, "") else f"property: source {source!r} takes no property"
    if not isinstance(prop, str) or not prop.strip():
        what = "a header name" if source == HEADER else "a JSONPath such as $.items[0].state"
        return f"property: source {source!r} needs {what}"
    if len(prop) > MAX_TEXT:
        return f"property: at most {MAX_TEXT} characters"
    if source == JSON:
        try:
            compiled_path(prop)
        except jsonpath.JSONPathError as exc:
            return f"property: not a JSONPath (RFC 9535): {str(exc).splitlines()[0]}"
    return ""


def _value_problem(source: str, op: str, assertion: dict) -> str:
    value = assertion.get("value", _MISSING)
    if op == "exists":
        return "" if value is _MISSING or isinstance(value, bool) else "value: exists takes true, false or nothing"
    if value is _MISSING:
        return f"value: {op!r} needs a value"
    if op == "matches":
        if not isinstance(value, str):
            return "value: matches needs a regular expression (a string)"
        if len(value) > MAX_TEXT:
            return f"value: at most {MAX_TEXT} characters"
        try:
            compiled_pattern(value)
        except re2.error as exc:
            return f"value: not a regular expression (RE2 syntax): {_text(exc)}"
        return ""
    if op == "in":
        if not isinstance(value, list) or not value:
            return "value: in needs a non-empty list"
        return next((f"value: {p}" for p in map(lambda v: _scalar_problem(source, op, v), value) if p), "")
    if source == DNS and op in ("eq", "ne"):
        records = value if isinstance(value, list) else [value]
        if not records or not all(isinstance(r, str) for r in records):
            return "value: the expected records, a string or a non-empty list of strings"
        return ""
    problem = _scalar_problem(source, op, value)
    return f"value: {problem}" if problem else ""


def _scalar_problem(source: str, op: str, value: Any) -> str:
    if source == STATUS:
        ok = isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599
        return "" if ok else f"an HTTP status from 100 to 599, got {value!r}"
    if source in (LATENCY, TLS_DAYS) or op in ORDERING:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return "" if ok else f"a number, got {value!r}"
    if source in (HEADER, BODY, DNS):
        if not isinstance(value, str):
            return f"a string, got {value!r}"
        return "" if len(value) <= MAX_TEXT else f"at most {MAX_TEXT} characters"
    return ""  # json compares any JSON value


@functools.lru_cache(maxsize=512)
def compiled_path(path: str) -> jsonpath.JSONPath:
    return _JSONPATH.compile(path)


@functools.lru_cache(maxsize=512)
def compiled_pattern(pattern: str):
    return re2.compile(pattern, _RE2_OPTIONS)


# --- evaluation ------------------------------------------------------------


def needs_body(assertions: list[dict]) -> bool:
    return isinstance(assertions, list) and any(isinstance(a, dict) and a.get("source") in (BODY, JSON)
                                                for a in assertions)


def failed_assertion(assertions: list[dict] | None, seen: Observation) -> str:
    """The first assertion that does not hold, described; "" when all hold."""
    if not assertions:
        return ""
    if not isinstance(assertions, list):  # the model never stores this; a hand-made message might carry it
        return "assertions: not a list"
    for index, assertion in enumerate(assertions):
        if not isinstance(assertion, dict):
            return f"assertions[{index}]: not an object"
        failure = _evaluate(assertion, seen)
        if failure:
            return failure
    return ""


def _evaluate(assertion: dict, seen: Observation) -> str:
    source, op, prop = assertion.get("source"), assertion.get("op"), assertion.get("property") or ""
    expected = assertion.get("value", True if op == "exists" else None)
    name = f"{source} {prop}" if prop else str(source)
    try:
        actual = _actual(source, prop, seen)
    except ValueError as exc:
        return f"{name}: {exc}"
    try:
        holds = _holds(op, source, actual, expected)
    except (TypeError, re2.error):
        holds = False
    if holds:
        return ""
    if op == "exists":
        return f"{name}: expected {'to exist' if expected else 'not to exist'}"
    if source == DNS and actual is not _MISSING:
        actual = sorted(actual)  # a set of records: shown in a stable order
    return f"{name}: expected {op} {_show(expected)}, got {_show(None if actual is _MISSING else actual)}"


def _actual(source: str, prop: str, seen: Observation) -> Any:
    if source == STATUS:
        return seen.status_code if seen.status_code is not None else _MISSING
    if source == HEADER:
        return _header(seen.headers, prop)
    if source == BODY:
        return seen.body if seen.body is not None else _MISSING
    if source == JSON:
        return _json_value(seen.body, prop)
    if source == LATENCY:
        return seen.latency_ms if seen.latency_ms is not None else _MISSING
    if source == TLS_DAYS:
        if seen.tls_days is None:
            raise ValueError("no TLS certificate was seen")
        return round(seen.tls_days, 2)
    if source == DNS:
        return seen.dns_records if seen.dns_records is not None else _MISSING
    raise ValueError(f"unknown source {source!r}")


def _header(headers: Mapping[str, str], name: str) -> Any:
    value = headers.get(name)
    if value is None:  # a plain dict: look case-insensitively
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return _MISSING if value is None else value


def _json_value(body: str | None, path: str) -> Any:
    if body is None:
        return _MISSING
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"the body is not JSON ({exc.args[0] if exc.args else exc})") from exc
    found = compiled_path(path).findall(document)
    if not found:
        return _MISSING
    return found[0] if len(found) == 1 else found


def _holds(op: str, source: str, actual: Any, expected: Any) -> bool:
    if op == "exists":
        return (actual is not _MISSING) == bool(expected)
    if actual is _MISSING:
        return op in ("ne", "not_contains")
    if source == DNS:
        return _dns_holds(op, actual, expected)
    if op == "eq":
        return actual == expected
    if op == "ne":
        return actual != expected
    if op in ORDERING:
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return False
        return {"lt": actual < expected, "le": actual <= expected,
                "gt": actual > expected, "ge": actual >= expected}[op]
    if op in ("contains", "not_contains"):
        found = expected in actual if isinstance(actual, list) else _as_text(expected) in _as_text(actual)
        return found == (op == "contains")
    if op == "matches":
        return compiled_pattern(expected).search(_as_text(actual)) is not None
    if op == "in":
        return actual in expected
    return False


def _dns_holds(op: str, records: list[str], expected: Any) -> bool:
    # Records are an unordered set, and names compare case-insensitively.
    have = {r.lower() for r in records}
    if op in ("eq", "ne"):
        want = {str(e).lower().rstrip(".") for e in (expected if isinstance(expected, list) else [expected])}
        return (have == want) == (op == "eq")
    if op in ("contains", "not_contains"):
        return (str(expected).lower().rstrip(".") in have) == (op == "contains")
    if op == "matches":
        pattern = compiled_pattern(expected)
        return any(pattern.search(record) is not None for record in records)
    return False


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 200 else text[:199] + "…"


def _text(exc: BaseException) -> str:
    message = exc.args[0] if exc.args else exc
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
