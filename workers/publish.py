"""A probe node's results on their way to the broker, kept until it takes them.

While the broker is away (restarting, a network cut) a node goes on running
its checks: results that could not be published stay here and go with the
next flush, and at the end of the batch the node waits for the broker, with
jittered backoff, for up to `PATIENCE` seconds before it gives up on them. The
batch is acknowledged only after that (acks_late), so a node killed while it
waits gets its batch back from the broker and runs it again.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# How long a batch waits for the broker to take its results: a broker
# restart, with room to spare.
PATIENCE = 300.0


def backoff(attempt: int, cap: float = 30.0) -> float:
    """Seconds before retry number `attempt` (0-based): doubling from 1 s up
    to `cap`, each wait drawn from its upper half so that nodes (and tasks)
    that failed together do not come back together."""
    base = min(2.0 ** attempt, cap)
    return base / 2 + random.uniform(0, base / 2)


class ResultSender:
    """Calls `send` with results; what it could not send is sent again with
    the next results, and `close` waits for the broker until it took it all."""

    def __init__(self, send: Callable[[list[dict]], None], patience: float = PATIENCE,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.send, self.patience, self.sleep, self.clock = send, patience, sleep, clock
        self.pending: list[dict] = []
        self.failures = 0

    def __call__(self, results: list[dict]) -> None:
        self.pending += results
        self.flush()

    def flush(self) -> bool:
        """One attempt to hand over everything pending; True when nothing is left."""
        if not self.pending:
            return True
        try:
            self.send(self.pending)
        except Exception as exc:  # the broker's errors vary by transport; all mean "not taken"
            self.failures += 1
            if self.failures == 1:
                log.warning("could not publish %d results (%s: %s); keeping them and retrying",
                            len(self.pending), type(exc).__name__, exc)
            return False
        if self.failures:
            log.warning("published %d results after %d failed attempts", len(self.pending), self.failures)
        self.pending, self.failures = [], 0
        return True

    def close(self) -> int:
        """Wait, with backoff, until everything is published or patience runs
        out; returns how many results were given up."""
        give_up_at = self.clock() + self.patience
        attempt = 0
        while not self.flush():
            wait = backoff(attempt)
            if self.clock() + wait > give_up_at:
                log.error("gave up publishing %d results after %.0f s without a broker",
                          len(self.pending), self.patience)
                lost, self.pending = len(self.pending), []
                return lost
            self.sleep(wait)
            attempt += 1
        return 0
