"""Django's cache on the broker's Redis (loopr/cache.py): it keeps to its key
prefix, so clearing it leaves the broker's keys alone, and a Redis that is
away makes it miss instead of failing the request."""

from __future__ import annotations

import redis
from django.conf import settings
from django.core.cache import cache

from loopr.cache import RedisCache


def test_clearing_the_cache_deletes_its_own_keys_and_never_the_brokers():
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.set("loopr-test-broker-key", "queued work")
    try:
        cache.set_many({f"k{n}": n for n in range(2500)})
        cache.set("snapshot", {"html": b"<p>"})
        assert cache.get("snapshot") == {"html": b"<p>"}
        cache.clear()
        assert cache.get("snapshot") is None and cache.get_many(["k0", "k2499"]) == {}
        assert broker.get("loopr-test-broker-key") == b"queued work"
    finally:
        broker.delete("loopr-test-broker-key")


def test_the_key_prefix_is_the_runs_own():
    # tests/env.py: each test run (and each xdist worker) has its own.
    assert cache.key_prefix == settings.LOOPR_CACHE_PREFIX
    assert settings.LOOPR_CACHE_PREFIX.startswith("loopr-test-")


def test_a_redis_that_is_away_is_a_miss_not_an_error():
    away = RedisCache("redis://127.0.0.1:1/0", {"KEY_PREFIX": "away",
                                                "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}})
    away.set("k", 1)
    away.set_many({"a": 1})
    assert away.get("k", "default") == "default"
    assert away.get_many(["k"]) == {}
    assert away.add("k", 1) is False
    assert away.delete("k") is False
    assert away.clear() is False
