"""What the probes owe: every check sent, until its result is ingested.

Two sorted sets in the broker's Redis, scored by deadline, one member per
(monitor, region, slot). The dispatcher enters each check before it sends
it; ingest strikes out every result it stores (one round trip per message);
the re-dispatch sweep (`workers/redispatch.py`) reads only the members whose
deadline has passed, so when everything is on time it costs one
ZRANGEBYSCORE a tick that finds nothing, and no look at the results table.

`OWED` holds checks sent once; `RESENT` those the sweep sent again, whose
next deadline decides them missed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.conf import settings

OWED = "loopr:owed"
RESENT = "loopr:owed:resent"
# Seconds after a check's verdict deadline (slot + timeout + grace) that its
# result may still be on its way: a probe flushes every second, ingest may
# have a short queue.
MARGIN = 5.0


@dataclass(frozen=True)
class Owed:
    monitor: int
    region: str
    slot: datetime

    @classmethod
    def parse(cls, member: bytes | str) -> Owed | None:
        text = member.decode() if isinstance(member, bytes) else member
        try:
            monitor, region, micros = text.split("|")
            return cls(int(monitor), region, EPOCH + timedelta(microseconds=int(micros)))
        except (ValueError, OverflowError):
            return None

    @property
    def member(self) -> str:
        return key(self.monitor, self.region, micros(self.slot))


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def micros(slot: datetime) -> int:
    # Exact, unlike a float timestamp: the slot a re-dispatch sends must be
    # the very slot first sent, or its result would be another row.
    return (slot - EPOCH) // timedelta(microseconds=1)


def key(monitor: int, region: str, slot_micros: int) -> str:
    # The same text whichever ISO-8601 spelling (offset, precision) the
    # dispatcher and the probe used.
    return f"{monitor}|{region}|{slot_micros}"


def slot_micros(slot: object) -> int | None:
    if not isinstance(slot, str):
        return None
    try:
        parsed = datetime.fromisoformat(slot)
        return micros(parsed) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def deadline(slot_micros_: int, timeout: float, now: float | None = None) -> float:
    """When a check sent now should have its result: its verdict deadline,
    counted from its slot or, for a check sent late, from now."""
    start = max(slot_micros_ / 1e6, time.time() if now is None else now)
    return start + timeout + settings.LOOPR_VERDICT_GRACE + MARGIN


class Ledger:
    def __init__(self, client) -> None:
        self.client = client

    def expect(self, region: str, checks: Iterable[dict]) -> None:
        """Enter checks about to be sent to `region`."""
        entries, now = {}, time.time()
        for check in checks:
            slot = slot_micros(check["slot"])
            entries[key(check["monitor"], region, slot)] = deadline(slot, float(check.get("timeout", 10)), now)
        if entries:
            self.client.zadd(OWED, entries)

    def settle(self, region: str, results: object) -> None:
        """Strike out the checks a message of results answers."""
        if not isinstance(results, list):
            return
        members = []
        for result in results:
            if isinstance(result, dict) and isinstance(result.get("monitor"), int):
                slot = slot_micros(result.get("slot"))
                if slot is not None:
                    members.append(key(result["monitor"], str(region), slot))
        if members:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(OWED, *members)
            pipe.zrem(RESENT, *members)
            pipe.execute()

    def overdue(self, now: float, limit: int) -> tuple[list[Owed], list[Owed]]:
        """Checks past their deadline: sent once, and sent again."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrangebyscore(OWED, "-inf", now, start=0, num=limit)
        pipe.zrangebyscore(RESENT, "-inf", now, start=0, num=limit)
        first, again = pipe.execute()
        parse = lambda members: [o for o in map(Owed.parse, members) if o is not None]  # noqa: E731
        return parse(first), parse(again)

    def resent(self, owed: dict[Owed, float]) -> None:
        """Move checks sent again to RESENT, each with its new deadline."""
        if not owed:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(OWED, *(o.member for o in owed))
        pipe.zadd(RESENT, {o.member: at for o, at in owed.items()})
        pipe.execute()

    def postpone(self, owed: Iterable[Owed], until: float) -> None:
        """Look at these again at `until` (only those still owed)."""
        members = {o.member: until for o in owed}
        if members:
            pipe = self.client.pipeline(transaction=False)
            pipe.zadd(OWED, members, xx=True)
            pipe.zadd(RESENT, members, xx=True)
            pipe.execute()

    def forget(self, owed: Iterable[Owed]) -> None:
        members = [o.member for o in owed]
        if members:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(OWED, *members)
            pipe.zrem(RESENT, *members)
            pipe.execute()

    def size(self) -> tuple[int, int]:
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(OWED)
        pipe.zcard(RESENT)
        return tuple(pipe.execute())
