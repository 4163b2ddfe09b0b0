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


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)


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
            return cls(int(monitor), region, EPOCH + int(micros) * MICROSECOND)
        except (ValueError, OverflowError):
            return None

    @property
    def member(self) -> str:
        return key(self.monitor, self.region, (self.slot - EPOCH) // MICROSECOND)


def key(monitor: int, region: str, micros: int) -> str:
    # The slot as whole epoch microseconds: exact (a check sent again must
    # carry its very slot, or the natural key would see a new one), and the
    # same text whichever ISO-8601 spelling the dispatcher and the probe used.
    return f"{monitor}|{region}|{micros}"


def slot_micros(slot: object) -> int | None:
    if not isinstance(slot, str):
        return None
    try:
        parsed = datetime.fromisoformat(slot)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return (parsed - EPOCH) // MICROSECOND
    except OverflowError:
        return None


def deadline(micros: int, timeout: float) -> float:
    return micros / 1e6 + timeout + settings.LOOPR_VERDICT_GRACE + MARGIN


class Ledger:
    def __init__(self, client) -> None:
        self.client = client

    def expect(self, region: str, checks: Iterable[dict]) -> None:
        """Enter checks about to be sent to `region`."""
        entries = {}
        for check in checks:
            micros = slot_micros(check["slot"])
            entries[key(check["monitor"], region, micros)] = deadline(micros, float(check.get("timeout", 10)))
        if entries:
            self.client.zadd(OWED, entries)

    def settle(self, region: str, results: object) -> None:
        """Strike out the checks a message of results answers."""
        if not isinstance(results, list):
            return
        members = []
        for result in results:
            if isinstance(result, dict) and isinstance(result.get("monitor"), int):
                micros = slot_micros(result.get("slot"))
                if micros is not None:
                    members.append(key(result["monitor"], str(region), micros))
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
        unreadable = [m for m in first + again if Owed.parse(m) is None]
        if unreadable:  # e.g. entered by an older version: dropped, or every tick would read them again
            pipe.zrem(OWED, *unreadable)
            pipe.zrem(RESENT, *unreadable)
            pipe.execute()
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
