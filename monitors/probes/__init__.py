"""Probes: run one check against a target and describe what happened.

`run_check` never raises and never touches the database, so a probe node can
run it without one and tests can run it against real local sockets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import urlsplit

from monitors.choices import KIND_OF_SCHEME, ErrorKind, MonitorKind

from .base import CheckClock, CheckSpec, ProbeResult, parse_expected_status, status_matches
from .dns import check_dns
from .http import check_http
from .icmp import check_icmp
from .tcp import check_tcp

__all__ = [
    "CheckSpec",
    "ProbeResult",
    "parse_expected_status",
    "run_check",
    "status_matches",
]

# One probe module per kind; a heartbeat is pinged, never probed.
_PROBES: dict[str, Callable[[CheckSpec, CheckClock], ProbeResult]] = {
    MonitorKind.HTTP: check_http,
    MonitorKind.TCP: check_tcp,
    MonitorKind.DNS: check_dns,
    MonitorKind.ICMP: check_icmp,
}


def run_check(spec: CheckSpec) -> ProbeResult:
    timeout = spec.timeout if isinstance(spec.timeout, (int, float)) else math.nan
    clock = CheckClock(timeout if math.isfinite(timeout) else 0.0)
    try:
        if not (math.isfinite(timeout) and timeout > 0):
            return clock.invalid(f"timeout must be a positive number of seconds: {spec.timeout!r}")
        try:
            scheme = urlsplit(spec.url).scheme.lower()
        except ValueError as exc:  # e.g. an unclosed IPv6 bracket
            return clock.invalid(f"invalid URL: {exc}")
        kind = spec.kind or KIND_OF_SCHEME.get(scheme, "")
        if not spec.kind and not kind:
            return clock.invalid(
                f"unsupported scheme {scheme!r}" if scheme else "URL has no scheme"
            )
        if KIND_OF_SCHEME.get(scheme) != kind:
            return clock.invalid(f"a {kind} check cannot take a {scheme or 'scheme-less'} URL")
        probe = _PROBES.get(kind)
        if probe is None:
            return clock.invalid(f"no probe runs {kind!r} checks")
        return probe(spec, clock)
    except Exception as exc:  # noqa: BLE001 - a probe bug must not kill the batch
        return clock.result(ErrorKind.INTERNAL, f"{type(exc).__name__}: {exc}")
