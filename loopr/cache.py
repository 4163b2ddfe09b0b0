"""Django's cache on the broker's Redis, shared by every process: a status
page's snapshot and the precomputed uptime figures are built once, by the
central worker, and read by every web process (a per-process cache built
them once per process, at request time).

The broker's keys live in the same Redis database, so this cache keeps to
its key prefix (`LOOPR_CACHE_PREFIX`): `clear()` deletes its own keys, never
FLUSHDB, which would drop queued work. A Redis that is away makes the cache
miss (reads give nothing, writes are dropped, both logged) instead of
failing the request: a public page is then built where it is asked for."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)
CLEAR_BATCH = 1000


def _guarded(name: str, missing: Callable[..., Any]) -> Callable[..., Any]:
    """Django's RedisCache method `name`, answering `missing(*args)` when Redis is away."""
    method = getattr(DjangoRedisCache, name)

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except UNAVAILABLE as exc:
            log.warning("cache %s: Redis unavailable (%s); going on without the cache", name, exc)
            return missing(*args, **kwargs)

    return guarded


class RedisCache(DjangoRedisCache):
    get = _guarded("get", lambda key, default=None, version=None: default)
    get_many = _guarded("get_many", lambda *args, **kwargs: {})
    set = _guarded("set", lambda *args, **kwargs: None)
    set_many = _guarded("set_many", lambda data, *args, **kwargs: list(data))  # the keys not set: all
    add = _guarded("add", lambda *args, **kwargs: False)
    delete = _guarded("delete", lambda *args, **kwargs: False)

    def clear(self) -> bool:
        client = self._cache.get_client(None, write=True)
        pattern = _glob_escape(self.key_prefix) + ":*"
        batch = []
        for key in client.scan_iter(match=pattern, count=CLEAR_BATCH):
            batch.append(key)
            if len(batch) == CLEAR_BATCH:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
        return True


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
