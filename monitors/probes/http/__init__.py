"""HTTP(S) probe.

What a check measures is what a new visitor sees, so every check opens fresh
connections; what it reuses is everything that only costs CPU (one Session and
adapter per thread, one SSLContext per process).

The timeout is a deadline for the whole check, enforced by `loopr.net`'s
reaper even against a server that trickles one byte at a time.

Its parts: `check` (the check and how a response is judged), `keyword`
(searching the body), `failures` (what a failed check reports), `session`
(the per-thread Session and the urllib3 connections under it) and `tls`
(the shared SSLContext and certificate expiry).
"""

from __future__ import annotations

from .check import check_http
from .keyword import CHUNK_BYTES, MAX_BODY_BYTES, find_keyword
from .session import MAX_REDIRECTS, USER_AGENT
from .tls import build_ssl_context, certificate_expiry, get_ssl_context, set_ssl_context

__all__ = [
    "CHUNK_BYTES",
    "MAX_BODY_BYTES",
    "MAX_REDIRECTS",
    "USER_AGENT",
    "build_ssl_context",
    "certificate_expiry",
    "check_http",
    "find_keyword",
    "get_ssl_context",
    "set_ssl_context",
]
