"""Signed reports: how a probe node proves who it is with no secret on the wire.

A node holds its enrolment token; the central stores only the token's
SHA-256 (`NodeToken.key_hash`). That hash is the report's HMAC key: the node
computes it from its token, the central reads it from the database, and it
never travels. A report names its key by `key`, a hash of the key (so the
central can find the token without being told the secret), and carries:

    v       1
    kind    "results" or "heartbeat"
    region  the node's region;  node: its name
    ts      when it was signed (Unix seconds)
    nonce   16 random bytes, hex
    key     the key id, sha256("loopr-key-id:" + key_hash)[:32]
    body    the payload, a JSON string: exactly the bytes signed
    sig     hex HMAC-SHA256(key_hash, "loopr-report-v1\\n" + kind, region,
            node, ts, nonce, key and body, joined by "\\n")

The central verifies the signature before it parses a single row of `body`.
It refuses a report older than `LOOPR_REPORT_MAX_AGE` (results; a day by
default, so a backlog after a central outage is still stored) or three
heartbeat intervals (heartbeats), or more than `MAX_SKEW` seconds in the
future, and a heartbeat whose nonce it has seen (kept in Redis for as long as
the heartbeat would be fresh). A replayed result changes nothing: results are
stored once per (monitor, slot, region). A revoked token is refused at the
next report. Nothing here touches the database except `verify`'s lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any, TypedDict

from django.conf import settings

VERSION = 1
KINDS = ("results", "heartbeat")
MAX_SKEW = 300.0  # seconds a node's clock may run ahead
REGION_NAME = re.compile(r"[-a-zA-Z0-9_]{1,64}")
MAX_NODE_CHARS = 200
NONCE_KEY_PREFIX = "loopr:nonce:"


class Report(TypedDict):
    v: int
    kind: str
    region: str
    node: str
    ts: float
    nonce: str
    key: str
    body: str
    sig: str


class Refused(Exception):
    """Why a report was refused: a reason from a fixed vocabulary, so that
    rejections aggregate however many names a rogue invents."""

    MALFORMED = "malformed report"
    UNKNOWN_KEY = "unknown token"
    BAD_SIGNATURE = "bad signature"
    REVOKED = "revoked token"
    STALE = "stale report"
    FUTURE = "report from the future"
    REPLAYED = "replayed report"

    def __init__(self, reason: str, region: str = "", node: str = ""):
        super().__init__(reason)
        self.reason, self.region, self.node = reason, region, node


def key_hash(token: str) -> str:
    """The token's stored hash, which is also its signing key."""
    return hashlib.sha256(token.encode()).hexdigest()


def key_id(hashed: str) -> str:
    return hashlib.sha256(("loopr-key-id:" + hashed).encode()).hexdigest()[:32]


def _signature(hashed: str, kind: str, region: str, node: str, ts: float, nonce: str, key: str, body: str) -> str:
    message = "\n".join(["loopr-report-v1", kind, region, node, repr(ts), nonce, key, body])
    return hmac.new(hashed.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign(kind: str, region: str, node: str, payload: Any, token: str, now: float | None = None) -> Report:
    hashed = key_hash(token)
    ts, nonce, key = float(now if now is not None else time.time()), secrets.token_hex(16), key_id(hashed)
    body = json.dumps(payload, separators=(",", ":"))
    return {
        "v": VERSION, "kind": kind, "region": region, "node": node, "ts": ts, "nonce": nonce, "key": key,
        "body": body, "sig": _signature(hashed, kind, region, node, ts, nonce, key, body),
    }


def summary(report: Report, count: int | None = None) -> str:
    """What Celery's argsrepr/kwargsrepr headers show instead of the report."""
    return f"<{report['kind']} report from {report['node']}/{report['region']}{f', {count} results' if count is not None else ''}>"


def check_shape(report: object, kind: str) -> tuple[str, str]:
    """The claimed (region, node) of a well-formed report, or `Refused`."""
    if not isinstance(report, dict) or report.get("v") != VERSION or report.get("kind") != kind:
        raise Refused(Refused.MALFORMED)
    region, node = report.get("region"), report.get("node")
    if not isinstance(region, str) or not REGION_NAME.fullmatch(region):
        raise Refused(Refused.MALFORMED)
    if not isinstance(node, str) or not 0 < len(node) <= MAX_NODE_CHARS:
        raise Refused(Refused.MALFORMED, region)
    fields_ok = (
        isinstance(report.get("ts"), float)
        and all(isinstance(report.get(name), str) for name in ("nonce", "key", "body", "sig"))
        and len(report["nonce"]) <= 64 and len(report["key"]) <= 64 and len(report["sig"]) <= 128
    )
    if not fields_ok:
        raise Refused(Refused.MALFORMED, region, node)
    return region, node


def verify(report: object, kind: str, tokens_for, now: float | None = None, seen=None) -> tuple[Any, Any]:
    """The token that signed `report` and its decoded payload, or `Refused`.

    `tokens_for(region)` gives the claimed region's tokens (revoked ones
    included, to say so); `seen(nonce, ttl)` records a nonce and says whether
    it was new (heartbeats only)."""
    region, node = check_shape(report, kind)
    found = next((t for t in tokens_for(region) if hmac.compare_digest(key_id(t.key_hash), report["key"])), None)
    if found is None:
        raise Refused(Refused.UNKNOWN_KEY, region, node)
    expected = _signature(found.key_hash, kind, region, node, report["ts"], report["nonce"], report["key"],
                          report["body"])
    if not hmac.compare_digest(expected, report["sig"]):
        raise Refused(Refused.BAD_SIGNATURE, region, node)
    if found.revoked_at is not None:
        raise Refused(Refused.REVOKED, region, node)
    now = time.time() if now is None else now
    if now - report["ts"] > max_age(kind):
        raise Refused(Refused.STALE, region, node)
    if report["ts"] - now > MAX_SKEW:
        raise Refused(Refused.FUTURE, region, node)
    if kind == "heartbeat" and seen is not None and not seen(report["nonce"], int(max_age(kind) + MAX_SKEW)):
        raise Refused(Refused.REPLAYED, region, node)
    try:
        payload = json.loads(report["body"])
    except (ValueError, RecursionError):
        raise Refused(Refused.MALFORMED, region, node) from None
    return found, payload


def max_age(kind: str) -> float:
    if kind == "heartbeat":
        return 3.0 * settings.LOOPR_HEARTBEAT_INTERVAL
    return float(settings.LOOPR_REPORT_MAX_AGE)


def remember_nonce(nonce: str, ttl: int) -> bool:
    """Record a heartbeat's nonce in Redis; False if it was there already."""
    from loopr.celery import app

    with app.connection_or_acquire() as conn:
        return bool(conn.default_channel.client.set(NONCE_KEY_PREFIX + nonce, b"1", nx=True, ex=max(1, ttl)))
