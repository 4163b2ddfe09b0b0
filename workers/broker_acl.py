"""Least-privilege probe nodes: one Redis ACL user per region.

A region's nodes log in to Redis as `loopr-node-<region>` with their own
enrolment token as the password. Redis stores ACL passwords as SHA-256
hashes (`#<hex>`), which is exactly `NodeToken.key_hash`: the central
writes the region's valid token hashes into the user and never needs the
tokens themselves; revoking a token removes its hash at once.

What kombu's Redis transport does for a consumer of `probe.<region>` that
publishes to `ingest` and `heartbeat` (kombu 5.7, Celery 5.7, with Loopr's
undeclared queues, loopr/celery.py), and so what the user may do:

- its queue: BRPOP `probe.<region>` and its priority lists (`probe.<region>`
  + "\\x06\\x16" + 3, 6, 9), LPUSH/RPUSH to put back a batch, LLEN;
- its unacked bookkeeping, per region through the transport options
  `unacked_key`, `unacked_index_key` and `unacked_mutex_key`
  (loopr/settings.py): HSET/HGET/HDEL, ZADD/ZREM/ZRANGE, the mutex's SET
  NX/GET/DEL in WATCH/MULTI/EXEC (kombu takes it with redis-py's Lock,
  which releases by Lua script; Loopr's transport gives it a plain one,
  loopr/broker.py, so that no node needs EVALSHA);
- the result queues, write only (`%W`, Redis 7): LPUSH `ingest`, `heartbeat`;
- remote control, receive only: PSUBSCRIBE to the pidbox channel
  (`/<db>.celery.pidbox`), SADD/SREM of its binding (write only), LLEN and
  DEL of its own `<hostname>.celery.pidbox` lists (empty: broadcasts travel
  by pub/sub; the pattern `*.celery.pidbox` also lets it read the reply
  lists of a `celery inspect` in progress, i.e. workers' answers, and the
  pidbox binding set, i.e. the workers' names; never a task); PUBLISH is not granted, so a node cannot send a command. Its
  pidbox queue has no expiry (CELERY_CONTROL_QUEUE_EXPIRES = None): with
  one, kombu keeps the binding alive with Lua scripts (EVALSHA), and a
  user allowed to run scripts can block the broker with an endless one. A
  reply to `celery inspect` needs a read of the reply binding and an LPUSH
  to the asker's `*.reply.celery.pidbox` list;
- its own drop counter `loopr:dropped:probe.<region>` (loopr/broker.py).

Nothing else: no KEYS, SCAN, FLUSH*, CONFIG, MONITOR, ACL, EVAL, no read of
any other key (another region's queue, `ingest`, the central's `unacked`).
Redis 6 (the embedded broker) has no write-only keys, so there the user can
also read `ingest` and `heartbeat`; reports are signed and carry no secret
(workers/reports.py), so a node reading them learns results, not tokens.
"""

from __future__ import annotations


from django.conf import settings


SEP = "\x06\x16"  # kombu's separator between a queue's name and its priority
# A queue's priority lists, as a glob: its name then a character no region
# name has (kombu's separator), so that `probe.eu` never matches `probe.eu-west`.
# A class, not the separator itself: an ACL file cannot quote control bytes.
AFTER_NAME = "[^-a-zA-Z0-9_]*"  # ("-" first: Redis reads "_-]" as a range)
PRIORITY_STEPS = (3, 6, 9)
COMMANDS = (
    "ping", "auth", "hello", "select", "client|setinfo", "client|setname", "client|id", "quit", "reset",
    "brpop", "lpush", "rpush", "llen",
    "hset", "hget", "hdel", "hincrby",
    "zadd", "zrem", "zrange",
    "set", "get", "del", "watch", "unwatch", "multi", "exec", "discard",
    "sadd", "srem", "smembers",
    "psubscribe", "punsubscribe", "subscribe", "unsubscribe",
)


def username(region: str) -> str:
    return f"loopr-node-{region}"


def unacked_keys(region: str) -> dict[str, str]:
    """A region's nodes keep their unacknowledged batches in keys of their own."""
    return {
        "unacked_key": f"unacked.{region}",
        "unacked_index_key": f"unacked_index.{region}",
        "unacked_mutex_key": f"unacked_mutex.{region}",
    }


def rules(region: str, password_hashes: list[str], db: int, write_only: bool = True) -> list[str]:
    """The ACL rules of `region`'s node user, after `reset`."""
    queue = f"probe.{region}"
    w, r = ("%W~", "%R~") if write_only else ("~", "~")
    keys = [f"~{queue}", f"~{queue}{AFTER_NAME}", *(f"~{key}" for key in unacked_keys(region).values()),
            f"~loopr:dropped:{queue}", f"{w}ingest", f"{w}heartbeat",
            # Its remote-control queue: declared (bound) and deleted, never read.
            f"{w}_kombu.binding.celery.pidbox", f"{w}_kombu.binding_permanent.celery.pidbox",
            # (kombu counts it, LLEN, when it declares it: a pattern cannot name
            # only this node's, so the reply lists of `celery inspect` match too.)
            "~*.celery.pidbox", f"~*.celery.pidbox{AFTER_NAME}",
            # Replies to `celery inspect`: routed by the reply binding, pushed to the asker's list.
            f"{r}_kombu.binding.reply.celery.pidbox"]
    state = ["on", *(f"#{h}" for h in password_hashes)] if password_hashes else ["off"]
    return ["reset", *state, *keys, f"&/{db}.celery.pidbox", "-@all", *(f"+{c}" for c in COMMANDS)]


def acl_file_line(region: str, password_hashes: list[str], db: int, write_only: bool = True,
                  known: set[str] | None = None) -> str:
    """The user as a line of a Redis ACL file; `known`: the server's
    commands, when it could be asked."""
    wanted = [r for r in rules(region, password_hashes, db, write_only)
              if r != "reset" and (known is None or not r.startswith("+") or r[1:] in known)]
    return " ".join(["user", username(region), *wanted])


def redis_supports_write_only(client) -> bool:
    return int(str(client.info("server")["redis_version"]).split(".")[0]) >= 7


def apply(client, region: str, password_hashes: list[str], db: int) -> None:
    """Create or update the region's user on the server `client` talks to."""
    wanted = rules(region, password_hashes, db, redis_supports_write_only(client))
    known = _known_commands(client)
    wanted = [r for r in wanted if not r.startswith("+") or r[1:] in known]
    # Raw: redis-py's acl_setuser cannot express %W key rules.
    client.execute_command("ACL", "SETUSER", username(region), *wanted)


def _known_commands(client) -> set[str]:
    """The server's commands and subcommands (CLIENT SETINFO is Redis 7.2+),
    so that a rule for one it lacks does not fail the whole user."""
    known = set()
    for name, info in client.command().items():
        known.add(name)
        for sub in info.get("subcommands") or []:
            name = sub[0] if isinstance(sub, (list, tuple)) else sub
            known.add((name.decode() if isinstance(name, bytes) else str(name)).lower())
    return known


def broker_client():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)


def db_of(client) -> int:
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)


def sync(users: dict[str, list[str]], client=None) -> list[str]:
    """Each region's user with the hashes of its valid tokens (none: off);
    `users` maps region names to hashes (`NodeToken.broker_users()`)."""
    client = client or broker_client()
    for region, hashes in users.items():
        apply(client, region, hashes, db_of(client))
    return list(users)
