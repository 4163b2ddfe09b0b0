"""Network plumbing shared by the probes and the notification transports.

What lives here, each written once:

* `Deadline` and the reaper behind it: a total deadline for one check or one
  delivery attempt. `requests` timeouts apply per socket operation, so a peer
  trickling one byte at a time would never trip them; one daemon thread per
  process shuts down the sockets of any attempt whose deadline has passed.
* `BoundedConnectionMixin`: for urllib3 connection classes, connecting
  within the thread's current deadline, which can then cut the socket.
* `connect_first`: the address-by-address connect loop in which each attempt
  gets only what is left of the deadline, and each address is first put to
  the attempt's target policy (`loopr.addresses.Guard`): at connect time, on
  what the name resolves to then, for every redirect hop.
* `exception_chain` / `find_cause`: requests wraps urllib3 which wraps the
  socket error, so what went wrong is often several links down.

Only the standard library and urllib3: this module knows nothing of Django,
checks or channels, so probes can use it without a database.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.util.connection import allowed_gai_family

from .addresses import OPEN, Guard, RefusedAddress

log = logging.getLogger(__name__)

# (family, type, proto, canonname, sockaddr), as socket.getaddrinfo returns them.
AddressInfo = tuple[int, int, int, str, Any]


# --- deadlines -------------------------------------------------------------


class Deadline:
    """One attempt's deadline and the sockets to cut when it passes, and
    the guard of the addresses it may connect to (BoundedConnectionMixin).

    Entered, it is the thread's current deadline (the one watched connections
    hand their sockets to) and waits in the reaper's heap; once left, the
    reaper passes it over.

    The reaper only ever calls shutdown(), never close(): closing from another
    thread could close a descriptor number that the attempt's thread has
    already reused. It shuts down our own dup() of each socket, which stays
    valid even after TLS wrapping detaches the original socket object.
    """

    __slots__ = ("expires", "guard", "reaped", "_socks", "_lock", "_done")

    def __init__(self, expires: float, guard: Guard = OPEN) -> None:
        self.expires = expires  # time.monotonic() value
        self.guard = guard
        self.reaped = False  # the reaper cut this attempt's sockets
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = False

    @classmethod
    def after(cls, seconds: float, guard: Guard = OPEN) -> Deadline:
        return cls(time.monotonic() + seconds, guard)

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def socket_timeout(self) -> float:
        # The floor keeps urllib3 from reading 0 as "non-blocking"; the reaper
        # has the rest covered.
        return max(self.expires - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> None:
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
            if self.reaped:
                _cut(dup)

    def reap(self) -> None:
        with self._lock:
            if self._done:
                return
            self.reaped = True
            for sock in self._socks:
                _cut(sock)

    def __enter__(self) -> Deadline:
        _local.deadline = self
        _reaper.add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _local.deadline = None
        with self._lock:
            self._done = True
            socks, self._socks = self._socks, []
        for sock in socks:
            sock.close()


def current_deadline() -> Deadline | None:
    return getattr(_local, "deadline", None)


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet or already gone: nothing left to interrupt


# Condition.wait() rejects huge timeouts; waking up now and then is harmless.
_MAX_REAPER_SLEEP = 3600.0


class _Reaper:
    """A heap of deadlines and one daemon thread that fires them.

    Finished attempts stay in the heap until their deadline and are then
    dropped; removing them early would cost more than it saves. One thread
    for the process, rather than a timer per attempt, because a probe worker
    starts hundreds of checks a second.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # add() takes the lock itself: Condition's __enter__ and __exit__ are
        # Python calls, and add() runs once per check.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._lock:
            heapq.heappush(self._heap, (deadline.expires, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="loopr-deadline-reaper", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._cond.notify()  # sooner than the reaper is sleeping for

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        deadline = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(min(wait, _MAX_REAPER_SLEEP))
            try:
                deadline.reap()
            except Exception:  # noqa: BLE001 - the thread must outlive any one attempt
                log.exception("could not cut an attempt at its deadline")


_local = threading.local()
_reaper = _Reaper()
# A forked worker inherits the heap but not the thread; start afresh.
os.register_at_fork(after_in_child=_reaper._reset)


# --- connecting ------------------------------------------------------------


def connect_first(
    addresses: Iterable[AddressInfo],
    remaining: Callable[[], float],
    options: Sequence[tuple[int, int, int]] = (),
    guard: Guard = OPEN,
) -> socket.socket:
    """A socket connected to the first of `addresses` that `guard` allows
    and that answers in time.

    Each attempt gets only `remaining()` seconds, what is left of the
    deadline, so a host with several addresses cannot stretch an attempt past
    it. Raises RefusedAddress when the guard refused every address,
    TimeoutError when time ran out (or the last attempt timed out), else the
    last attempt's OSError.
    """
    last_error: OSError | None = None
    refused: RefusedAddress | None = None
    tried = 0
    for family, kind, proto, _, address in addresses:
        try:
            guard.check(address[0])
        except RefusedAddress as exc:
            refused = exc
            continue
        tried += 1
        left = remaining()
        if left <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            for option in options:
                sock.setsockopt(*option)
            sock.settimeout(left)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    if refused is not None and not tried:
        raise refused
    if last_error is None:
        raise TimeoutError("the deadline passed before a connection was tried")
    raise last_error


class BoundedConnectionMixin:
    """For urllib3 connection classes: connect within the current deadline,
    and let it cut the socket.

    urllib3's create_connection gives every address the full connect timeout;
    here each attempt gets only what is left. Errors are urllib3's own, so
    requests wraps them as it always does.
    """

    def _new_conn(self) -> socket.socket:
        deadline = current_deadline()
        if deadline is None:  # used outside a deadline: behave like urllib3
            return super()._new_conn()  # type: ignore[misc]
        conn: Any = self
        host = conn._dns_host.strip("[]")  # noqa: SLF001 - the host urllib3 resolves
        try:
            addresses = socket.getaddrinfo(host, conn.port, allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(conn.host, conn, exc) from exc
        except UnicodeError:
            raise LocationParseError(f"'{host}', label empty or too long") from None
        try:
            sock = connect_first(addresses, deadline.remaining, conn.socket_options or (), deadline.guard)
        except TimeoutError:
            raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out.") from None
        except OSError as exc:
            raise NewConnectionError(
                conn, f"Failed to establish a new connection: {exc}"
            ) from exc
        sys.audit("http.client.connect", conn, conn.host, conn.port)
        deadline.watch(sock)
        return sock


# --- what went wrong -------------------------------------------------------


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """exc and everything it wraps: causes, contexts, urllib3 reasons, args."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args)
        stack.extend(item for item in linked if isinstance(item, BaseException))


def find_cause(exc: BaseException, kind: type[Any] | tuple[type[Any], ...]) -> Any:
    """The first exception in exc's chain that is a `kind`, or None."""
    return next((cause for cause in exception_chain(exc) if isinstance(cause, kind)), None)
