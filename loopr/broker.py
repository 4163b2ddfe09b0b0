"""The broker as a trust boundary: no message, whatever its bytes, stops a worker.

Probe nodes write to the central's queues and the central writes to theirs,
so every message is untrusted input. Celery and kombu trust the shape of what
they pop, and a malformed message escapes their handlers as an exception in
the worker's event loop, which Celery reports as `Unrecoverable error` and
exits on; a message already in kombu's unacked hash is put back on its queue
at shutdown, so the worker dies again on every restart. Two gates stop that,
each where the upstream code assumes a shape:

1. `Transport` (kombu's Redis transport): kombu's `Channel._brpop_read` calls
   `loads()` on the popped bytes and `Transport._deliver` builds a
   `virtual.Message` from the envelope without a check (`payload['properties']`,
   `properties['delivery_tag']`, a base64 body, `delivery_info['exchange']`
   in `QoS.append`). Bytes that are not JSON, or an envelope of the wrong
   shape, are dropped here, before kombu records them as unacked.
2. `Consumer` (Celery's worker consumer): `create_task_handler`'s
   `on_task_received` handles only `InvalidTaskError`, `ContentDisallowed`
   and `DecodeError`; `Request.__init__` unpacks the body as `args, kwargs,
   embed` and trusts `timelimit`, `id` and the header dict, so a body of `[1]`
   or `"x"`, headers as a list or `timelimit: "x"` escape as `ValueError` /
   `TypeError`. Each message is checked against Celery's protocol 2 and the
   task's own signature before Celery sees it; a bad one is acknowledged
   (never requeued) and counted.

A dropped message is logged with a bounded excerpt and counted per queue and
reason in the `loopr:dropped:<queue>` hash in Redis (`dropped_counts()`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import logging
import math
import secrets
import threading
import typing
from collections import Counter
from queue import Empty
from time import monotonic

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis import exceptions as redis_exceptions

from loopr.formatting import excerpt

log = logging.getLogger("loopr.broker")

DROPPED_KEY_PREFIX = "loopr:dropped:"
# A message bigger than this is refused before it is decoded (an ingest
# report of 100 results is ~50 kB; a probe batch of 5,000 checks a few MB).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Embedded canvas (callbacks, chains, chords) would let a message make the
# worker run further tasks of the sender's choosing; Loopr sends none.
CANVAS_KEYS = ("callbacks", "errbacks", "chain", "chord")

_local_counts: Counter[tuple[str, str]] = Counter()
_lock = threading.Lock()


class Poison(ValueError):
    """What is wrong with a message; the reason is short and bounded."""


def drop(queue: str, reason: str, sample: object, channel=None) -> None:
    """Count and log a message that will never be processed; `channel` is the
    kombu Redis channel it came from (the count goes to its Redis)."""
    queue, reason = str(queue)[:100], str(reason)[:120]
    with _lock:
        _local_counts[(queue, reason)] += 1
    log.warning("dropped a malformed message from queue %s: %s; message: %s", queue, reason, excerpt(sample))
    if channel is None:
        return
    try:
        # A client of its own from the pool: the channel's client may hold
        # the connection its BRPOP runs on.
        with channel.conn_or_acquire() as client:
            client.hincrby(DROPPED_KEY_PREFIX + queue, reason, 1)
    except Exception as exc:  # a node without the right to count still drops
        log.info("could not count the dropped message in Redis: %s", exc)


def dropped_counts(client) -> dict[str, dict[str, int]]:
    """Dropped messages so far, per queue and reason, from Redis."""
    out: dict[str, dict[str, int]] = {}
    for key in client.scan_iter(match=DROPPED_KEY_PREFIX + "*", count=100):
        queue = bytes_to_str(key)[len(DROPPED_KEY_PREFIX):]
        out[queue] = {bytes_to_str(k): int(v) for k, v in client.hgetall(key).items()}
    return out


def local_counts() -> dict[tuple[str, str], int]:
    with _lock:
        return dict(_local_counts)


# --- gate 1: the envelope, in kombu's Redis transport -------------------------------------


def parse_envelope(item: bytes | str) -> dict:
    """The kombu envelope popped from a Redis list, or `Poison`."""
    if len(item) > MAX_MESSAGE_BYTES:
        raise Poison(f"message of {len(item)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        envelope = loads(bytes_to_str(item))
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Poison(f"not a JSON envelope ({type(exc).__name__})") from None
    check_envelope(envelope)
    return envelope


def check_envelope(envelope: object) -> None:
    """Everything `virtual.Message` and the Redis `QoS.append` read from an
    envelope, with the types they assume."""
    if not isinstance(envelope, dict):
        raise Poison(f"envelope is a {type(envelope).__name__}, not an object")
    props = envelope.get("properties")
    if not isinstance(props, dict):
        raise Poison("envelope has no properties object")
    if not isinstance(props.get("delivery_tag"), str):
        raise Poison("properties.delivery_tag is not a string")
    info = props.get("delivery_info")
    if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("exchange", "routing_key")):
        raise Poison("properties.delivery_info lacks exchange and routing_key strings")
    for name in ("content-type", "content-encoding"):
        if envelope.get(name) is not None and not isinstance(envelope[name], str):
            raise Poison(f"{name} is not a string")
    if envelope.get("headers") is not None and not isinstance(envelope["headers"], dict):
        raise Poison("headers is not an object")
    body, encoding = envelope.get("body"), props.get("body_encoding")
    if body is not None and not isinstance(body, str):
        raise Poison("body is not a string")
    if encoding not in (None, "utf-8", "base64"):
        raise Poison("unknown body_encoding")
    if encoding == "base64" and body:
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise Poison("body is not valid base64") from None


class PlainLock:
    """The non-blocking lock kombu's `Mutex` takes around restoring
    unacknowledged messages, without Lua: redis-py's `Lock` releases by
    EVALSHA, and a probe node's Redis user may not run scripts (one that
    loops forever would block the broker; workers/broker_acl.py). SET NX PX
    to take it, WATCH/GET/MULTI/DEL to give back only one's own."""

    def __init__(self, client, name: str, timeout: float | None = None, **_ignored):
        self.client, self.name = client, name
        self.timeout_ms = int((timeout or 60) * 1000)
        self.token = secrets.token_hex(16).encode()

    def acquire(self, blocking: bool = False, **_ignored) -> bool:
        return bool(self.client.set(self.name, self.token, nx=True, px=self.timeout_ms))

    def release(self) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(self.name)
                if pipe.get(self.name) != self.token:
                    raise redis_exceptions.LockNotOwnedError("the lock expired and was taken")
                pipe.multi()
                pipe.delete(self.name)
                pipe.execute()
            except redis_exceptions.WatchError:
                raise redis_exceptions.LockNotOwnedError("the lock changed hands") from None


def _plain_lock_client(base: type) -> type:
    class Client(base):
        def lock(self, name, timeout=None, **kwargs):
            return PlainLock(self, name, timeout)

    return Client


class Channel(kombu_redis.Channel):
    def _get_client(self):
        client = super()._get_client()
        if isinstance(client, functools.partial):  # global_keyprefix: a partial of PrefixedStrictRedis
            return functools.partial(_plain_lock_client(client.func), *client.args, **client.keywords)
        return _plain_lock_client(client)

    def _brpop_read(self, **options):
        # kombu 5.7's _brpop_read, with the decoding split out: upstream
        # passes `loads(item)` straight to `_deliver`, and a decode error
        # escapes into the event loop (Unrecoverable error). Here a message
        # that is not a valid envelope is dropped; it was popped by BRPOP and
        # never entered the unacked hash, so nothing restores it.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            key, item = dest__item
            dest = bytes_to_str(key).rsplit(self.sep, 1)[0]
            if dest in self._held:
                self._give_back(key, item)
                return True
            self._queue_cycle.rotate(dest)
            try:
                envelope = parse_envelope(item)
            except Poison as exc:
                drop(dest, str(exc), item, self)
                return True
            self.connection._deliver(envelope, dest)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    # Queues a drain (`cancel_consumer`) has been ordered for and that are
    # still consumed until the consumer gets round to cancelling them
    # (`Consumer.call_soon`); what a BRPOP pops from them meanwhile goes back.
    _held: frozenset[str] = frozenset()

    def hold(self, queue: str) -> None:
        self._held = self._held | {queue}

    def release(self, queue: str) -> None:
        self._held = self._held - {queue}

    def _give_back(self, key: bytes, item: bytes) -> None:
        # BRPOP took it from the right end; RPUSH puts it back where it was,
        # first in line. It never entered the unacked hash.
        key = bytes_to_str(key)
        if self.global_keyprefix and key.startswith(self.global_keyprefix):
            key = key[len(self.global_keyprefix):]  # the client adds it again
        with self.conn_or_acquire() as client:
            client.rpush(key, item)

    def basic_ack(self, delivery_tag, multiple=False):
        # A task that finishes after the broker connection was lost and made
        # anew acknowledges through its old channel, whose connection info is
        # gone: kombu's AttributeError there ends the worker. The message is
        # still in the unacked hash; the visibility timeout gives it back and
        # it runs again (every task is idempotent).
        if self._connection_gone():
            log.warning("not acknowledging a message of a lost broker connection; it is redelivered after the "
                        "visibility timeout")
            return
        return super().basic_ack(delivery_tag, multiple=multiple)

    def basic_reject(self, delivery_tag, requeue=False):
        if self._connection_gone():
            log.warning("not rejecting a message of a lost broker connection; it is redelivered after the "
                        "visibility timeout")
            return
        return super().basic_reject(delivery_tag, requeue=requeue)

    def _connection_gone(self) -> bool:
        return getattr(self.connection, "client", None) is None

    def close(self):
        # On a lost broker connection Celery closes it, and kombu's close
        # restores this channel's unacknowledged messages through a new
        # client built from connection info that is already gone: an
        # AttributeError that ends the worker (Unrecoverable error) instead
        # of letting it reconnect. The messages are not lost: they stay in
        # the unacked hash until the visibility timeout gives them back (and
        # the dispatcher's re-dispatch sends overdue checks sooner).
        try:
            super().close()
        except AttributeError:
            if not self._connection_gone():
                raise
            log.warning("broker connection lost while closing a channel; its unacknowledged messages "
                        "go back to their queues after the visibility timeout")

    def _deliver_fanout_message(self, message, exchange):
        # Broadcasts (remote control) are decoded by kombu, which drops what
        # is not JSON, but it builds a Message from any JSON value.
        try:
            check_envelope(message)
        except Poison as exc:
            drop(f"fanout:{exchange}", str(exc), message, self)
            return True
        return super()._deliver_fanout_message(message, exchange)


class MultiChannelPoller(kombu_redis.MultiChannelPoller):
    """kombu's poller, restoring abandoned messages on a clock in the
    blocking path too. On an event loop (the prefork pool) kombu sweeps the
    unacked index every `unacked_restore_interval` seconds by a timer. A
    worker on the gevent pool has no event loop: Celery's synloop calls
    `drain_events(timeout=2)`, and kombu's `get()` sweeps only when the poll
    returns no event at all, but an idle BRPOP answers nil every
    `brpop_timeout` (1 s), so a probe node never sweeps. A dead node's batch
    then stays in its region's unacked hash (`unacked.<region>`, which the
    central worker's sweep does not read) and no other node of the region
    ever runs it."""

    _next_restore = 0.0

    def get(self, callback, timeout=None):
        now = monotonic()
        if now >= self._next_restore:
            intervals = [c.unacked_restore_interval for c in self._channels if c.active_queues]
            if intervals:
                self._next_restore = now + max(1, min(intervals))
                self.maybe_restore_messages()
        return super().get(callback, timeout)


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with the envelope gate (see the module
    docstring) and a poller that restores abandoned messages on the gevent
    pool too (`MultiChannelPoller`)."""

    Channel = Channel

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cycle = MultiChannelPoller()


# --- gate 2: the Celery message, in the worker's consumer ---------------------------------

# Protocol 2 headers that Request.__init__ and the tracer read, and the type each must have.
_OPTIONAL_STR_HEADERS = ("shadow", "root_id", "parent_id", "group", "origin", "argsrepr", "kwargsrepr", "lang")


def check_task_message(message, tasks) -> None:
    """Raise `Poison` unless `message` is a Celery protocol-2 task message for
    a registered task, with arguments its signature accepts."""
    headers = message.headers
    if not isinstance(headers, dict):
        raise Poison(f"headers are a {type(headers).__name__}, not an object")
    name, task_id = headers.get("task"), headers.get("id")
    if not isinstance(name, str) or name not in tasks:
        raise Poison(f"unknown task {excerpt(name, 60)}")
    if not isinstance(task_id, str) or not 0 < len(task_id) <= 255:
        raise Poison("id is not a string of at most 255 characters")
    for key in _OPTIONAL_STR_HEADERS:
        if headers.get(key) is not None and not isinstance(headers[key], str):
            raise Poison(f"header {key} is not a string")
    _check_timelimit(headers.get("timelimit"))
    for key in ("eta", "expires"):
        if headers.get(key) is not None and not isinstance(headers[key], str):
            raise Poison(f"header {key} is not an ISO-8601 string")
    retries = headers.get("retries")
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool) or retries < 0):
        raise Poison("header retries is not a non-negative integer")
    if message.content_type != "application/json":
        raise Poison(f"content type {excerpt(message.content_type, 60)} is not application/json")
    try:
        body = message.decode()
    except (DecodeError, ContentDisallowed, ValueError, TypeError, RecursionError) as exc:
        raise Poison(f"body does not decode ({type(exc).__name__})") from None
    if not isinstance(body, (list, tuple)) or len(body) != 3:
        raise Poison("body is not [args, kwargs, embed]")
    args, kwargs, embed = body
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict) or not isinstance(embed, (dict, type(None))):
        raise Poison("body is not [list, object, object]")
    if embed and any(embed.get(key) for key in CANVAS_KEYS):
        raise Poison("embedded callbacks, chains and chords are not accepted")
    check_arguments(tasks[name], args, kwargs)


def _check_timelimit(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise Poison("timelimit is not [hard, soft]")
    for limit in value:
        if limit is None:
            continue
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) or limit < 0:
            raise Poison("timelimit holds something other than non-negative seconds")


_PLAIN_TYPES = {str: str, int: int, float: (int, float), bool: bool, list: (list, tuple), dict: dict}


def check_arguments(task, args: list, kwargs: dict) -> None:
    """The arguments bind to the task's signature, and each one annotated with
    a plain type (str, int, float, bool, list, dict) has that type."""
    signature, hints = _signature(task.run)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise Poison(f"arguments do not fit {task.name}: {excerpt(str(exc), 100)}") from None
    for param, value in bound.arguments.items():
        expected = hints.get(param)
        if expected is None:
            continue
        if isinstance(value, bool) and expected in (int, float):
            raise Poison(f"argument {param} of {task.name} is a boolean, not a number")
        if not isinstance(value, _PLAIN_TYPES[expected]):
            raise Poison(f"argument {param} of {task.name} is a {type(value).__name__}, not a {expected.__name__}")


_signature_cache: dict[object, tuple[inspect.Signature, dict[str, type]]] = {}


def _signature(func) -> tuple[inspect.Signature, dict[str, type]]:
    """The task's signature, and its named parameters annotated with exactly
    one plain type (*args and **kwargs are not checked)."""
    if func not in _signature_cache:
        signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func)
        except Exception:  # an annotation that does not resolve checks nothing
            hints = {}
        named = {
            name for name, p in signature.parameters.items()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }
        _signature_cache[func] = (signature, {k: v for k, v in hints.items() if k in named and v in _PLAIN_TYPES})
    return _signature_cache[func]


class Consumer(CeleryConsumer):
    """Celery's worker consumer with the task-message gate (module
    docstring), and a drain that takes effect when it is answered."""

    def call_soon(self, p, *args, **kwargs):
        # `celery control cancel_consumer` answers "no longer consuming"
        # at once and leaves the cancel to `call_soon`. On the gevent pool
        # (Celery's synloop) that runs only once the consumer's current
        # `drain_events` returns, and that drain is waiting on a BRPOP already
        # sent (prefetch is the concurrency, 100 batches, so there is always
        # room): a batch pushed after the answer is popped and run. Held from
        # the answer until the cancel, the queue's popped messages go back.
        if p == self.cancel_task_queue and args:
            channel = getattr(self.task_consumer, "channel", None)
            if isinstance(channel, Channel):
                channel.hold(self.app.amqp.queues.aliases.get(args[0], args[0]))
        return super().call_soon(p, *args, **kwargs)

    def cancel_task_queue(self, queue):
        try:
            return super().cancel_task_queue(queue)
        finally:
            channel = getattr(self.task_consumer, "channel", None)
            if isinstance(channel, Channel):
                channel.release(self.app.amqp.queues.aliases.get(queue, queue))

    def create_task_handler(self, *args, **kwargs):
        handle = super().create_task_handler(*args, **kwargs)
        tasks = self.app.tasks

        def on_task_received(message):
            try:
                check_task_message(message, tasks)
            except Poison as exc:
                queue = (message.delivery_info or {}).get("routing_key") or "?"
                drop(queue, str(exc), _message_sample(message), getattr(message, "channel", None))
                message.ack()
                return None
            return handle(message)

        return on_task_received


def _message_sample(message) -> str:
    return f"headers={excerpt(message.headers, 120)} body={excerpt(message.body, 120)}"
