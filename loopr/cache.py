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


def _guarded(method: Callable[..., Any], missing: Callable[..., Any]) -> Callable[..., Any]:
    """`method`, answering `missing(*args)` instead when Redis is away."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except UNAVAILABLE as exc:
            log.warning("cache %s: Redis unavailable (%s); going on without the cache", method.__name__, exc)
            return missing(*args, **kwargs)

    return guarded


class RedisCache(DjangoRedisCache):
    get = _guarded(DjangoRedisCache.get, lambda key, default=None, version=None: default)
    get_many = _guarded(DjangoRedisCache.get_many, lambda *args, **kwargs: {})
    set = _guarded(DjangoRedisCache.set, lambda *args, **kwargs: None)
    set_many = _guarded(DjangoRedisCache.set_many, lambda data, *args, **kwargs: list(data))  # not set: all
    add = _guarded(DjangoRedisCache.add, lambda *args, **kwargs: False)
    delete = _guarded(DjangoRedisCache.delete, lambda *args, **kwargs: False)

    def _delete_own_keys(self) -> bool:
        # The broker's keys share the database: never FLUSHDB.
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

    clear = _guarded(_delete_own_keys, lambda: False)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def remember(memory: dict, key, value, limit: int) -> None:
    """Keep `value` in a process's own `memory`, bounded by forgetting it all
    once it holds `limit` entries: what is forgotten is learnt again on its
    next use, and the check costs one len() where an LRU's order costs a lock."""
    if len(memory) >= limit:
        memory.clear()
    memory[key] = value
