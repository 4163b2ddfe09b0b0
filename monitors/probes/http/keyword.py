"""Looking for a monitor's keyword in a response body, reading no more of it
than needed and never more than `MAX_BODY_BYTES`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import requests

from monitors.choices import ErrorKind

MAX_BODY_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024


def look_for_keyword(response: requests.Response, keyword: str) -> tuple[str, str]:
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


def read_body(response: requests.Response, limit: int = MAX_BODY_BYTES) -> tuple[bytes, bool]:
    """The body, up to `limit` bytes, for assertions that look at all of it;
    returns (body, truncated)."""
    chunks: list[bytes] = []
    seen = 0
    while seen < limit:
        chunk = response.raw.read1(min(CHUNK_BYTES, limit - seen), decode_content=True)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        seen += len(chunk)
    return b"".join(chunks), True


def keyword_in(body: bytes, truncated: bool, keyword: str) -> tuple[str, str]:
    if keyword.encode() in body:
        return ErrorKind.OK, ""
    where = f"the first {len(body)} bytes" if truncated else f"the response body ({len(body)} bytes)"
    return ErrorKind.KEYWORD, f"keyword {keyword!r} not found in {where}"
