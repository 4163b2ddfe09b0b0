"""The per-heartbeat ping rate limit, kept in Redis: it costs a ping one
Redis round trip and no database query, and holds across web processes and
hosts (an in-process count would allow LOOPR_PING_RATE per process).

A sliding window of one minute, as a sorted set of the pings' times per
heartbeat, moved by one Lua script. A ping refused is not counted, so a job
that keeps pinging too often still gets LOOPR_PING_RATE pings recorded a
minute. When Redis
cannot be reached the ping is let through: a ping lost is a false alarm,
a ping let through is not.

The same script can add the ping's result to /metrics' checks_total
(`tally`), so that a steady ping costs one Redis round trip, not two.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from functools import lru_cache

import redis
from django.conf import settings

from loopr import tallies

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
KEY_PREFIX = "loopr:ping-rate:"


# One round trip: drop what left the window, count, add this ping if it fits
# (and then its tally, when one is given).
_COUNT = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then return 0 end
redis.call('ZADD', key, now, ARGV[4])
redis.call('EXPIRE', key, window + 1)
if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[5], 1) end
return 1
"""


@lru_cache(maxsize=1)
def _script(url: str):
    # Thread-safe: the client's pool hands each thread a connection of its own.
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return client.register_script(_COUNT)


def ping_allowed(key: uuid.UUID, now: float | None = None, tally: str = "") -> bool:
    """Count a ping of heartbeat `key`; False (and not counted) once
    LOOPR_PING_RATE were counted within the last minute. A ping let through
    also adds one to `tally`, a field of tallies.CHECKS, when one is given;
    when Redis is unreachable nothing is counted."""
    now = time.time() if now is None else now
    try:
        return bool(_script(settings.REDIS_URL)(
            keys=[f"{KEY_PREFIX}{key}", tallies.CHECKS],
            args=[now, WINDOW_SECONDS, settings.LOOPR_PING_RATE, f"{now:.6f}:{secrets.token_hex(4)}", tally]))
    except redis.RedisError as exc:
        log.warning("ping rate limit not applied, Redis unreachable: %s", exc)
        return True
