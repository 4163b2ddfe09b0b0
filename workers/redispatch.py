"""The central re-dispatch: checks whose result never came are sent again
once, then recorded as missed.

A batch can vanish between publish and consume (kombu's Redis transport
pops a message with BRPOP and records it as unacknowledged in a second round
trip: a node killed in between loses it for good), or sit with a dead node
until the broker's visibility timeout gives it back (300 s by default). So a
check still owed (`workers/ledger.py`) at its verdict deadline is sent again,
once, to its region, if the region is live; still owed at the next deadline,
it is recorded as missed: `node_died` when its region has no live node,
`expired` when it has. A result that turns up later (a batch given back by
the broker and run late) replaces the missed record.

While ingest has a backlog the results may simply be waiting there, and while
the region's probe queue has one the batch may be waiting there: nothing is
decided then, the deadline moves on (up to the batch's own expiry).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from monitors.choices import MissedReason
from monitors.missed import Missed, record_missed
from monitors.models import Monitor
from monitors.wire import CheckPayload

from .dispatch import PAYLOAD_COLUMNS, _payload, batch_expires, batches
from .ledger import MARGIN, Ledger, Owed
from .models import Region, queue_for

log = logging.getLogger(__name__)

# Most owed checks one sweep looks at.
LIMIT = 2000
# Messages waiting on `ingest` beyond which an owed result may be among them.
INGEST_BACKLOG = 50
# Batches waiting on a region's queue beyond which an owed check may be among them.
PROBE_BACKLOG = 20
# Seconds a sweep waits before it looks again at what it could not decide.
POSTPONE = 5.0


def sweep(ledger: Ledger, send: Callable[[str, list[CheckPayload], float], None],
          now: datetime | None = None) -> dict[str, int]:
    """Send overdue checks again, or record them missed; returns what it did."""
    at = (now or timezone.now()).timestamp()
    first, again = ledger.overdue(at, LIMIT)
    if not first and not again:
        return {}
    if ledger.client.llen("ingest") > INGEST_BACKLOG:
        ledger.postpone([*first, *again], at + POSTPONE)
        return {"postponed": len(first) + len(again)}
    # Deciding needs each monitor's interval only; the payload columns are
    # read for the checks sent again. Behind a probe backlog a sweep looks at
    # LIMIT entries every tick and sends none of them: model instances of
    # them all were most of the dispatcher's CPU.
    intervals = dict(Monitor.objects.filter(pk__in={o.monitor for o in [*first, *again]}, paused=False)
                     .values_list("pk", "interval"))
    # Deleted or paused since: nothing is owed any more.
    ledger.forget([o for o in [*first, *again] if o.monitor not in intervals])
    first = [o for o in first if o.monitor in intervals]
    again = [o for o in again if o.monitor in intervals]
    live = set(Region.objects.live().values_list("name", flat=True))
    backlog = _backlogs(ledger, {o.region for o in first if o.region in live})

    missed: list[tuple[Owed, str]] = [(o, MissedReason.NODE_DIED if o.region not in live else MissedReason.EXPIRED)
                                      for o in again]
    resend: dict[str, list[Owed]] = defaultdict(list)
    waiting: list[Owed] = []
    for owed in first:
        if owed.region not in live:
            missed.append((owed, MissedReason.NODE_DIED))
        elif backlog.get(owed.region, 0) > PROBE_BACKLOG:
            # Probably still queued: wait, but not past the batch's expiry.
            expiry = owed.slot.timestamp() + batch_expires([{"interval": intervals[owed.monitor]}])
            if at < expiry:
                waiting.append(owed)
            else:
                missed.append((owed, MissedReason.EXPIRED))
        else:
            resend[owed.region].append(owed)

    ledger.postpone(waiting, at + POSTPONE)
    sent = _resend(ledger, send, resend, at)
    _record(ledger, missed, intervals)
    outcome = {"resent": sent, "missed": len(missed), "postponed": len(waiting)}
    if sent or missed:
        log.warning("re-dispatch: %s", outcome)
    return outcome


def _backlogs(ledger: Ledger, regions: set[str]) -> dict[str, int]:
    if not regions:
        return {}
    pipe = ledger.client.pipeline(transaction=False)
    for region in sorted(regions):
        pipe.llen(queue_for(region))
    return dict(zip(sorted(regions), pipe.execute()))


def _resend(ledger: Ledger, send, resend: dict[str, list[Owed]], at: float) -> int:
    if not resend:
        return 0
    monitors = {m.pk: m for m in Monitor.objects.filter(pk__in={o.monitor for owed in resend.values() for o in owed})
                .only(*PAYLOAD_COLUMNS)}
    sent = 0
    for region, owed in resend.items():
        owed = [o for o in owed if o.monitor in monitors]  # deleted in the meantime
        checks = [_payload(o.slot, {f: getattr(monitors[o.monitor], f) for f in PAYLOAD_COLUMNS}) for o in owed]
        # Recorded before it goes, as the dispatcher does: a quick result
        # must find the entry to strike out.
        ledger.resent({o: at + monitors[o.monitor].timeout + settings.LOOPR_VERDICT_GRACE + MARGIN
                       + settings.LOOPR_DISPATCH_LOOKAHEAD for o in owed})
        for batch in batches(checks, settings.LOOPR_BATCH_SIZE):
            send(queue_for(region), batch, batch_expires(batch))
            sent += len(batch)
    return sent


def _record(ledger: Ledger, missed: list[tuple[Owed, str]], intervals: dict[int, int]) -> None:
    if not missed:
        return
    ids = dict(Region.objects.filter(name__in={o.region for o, _ in missed}).values_list("name", "id"))
    record_missed(
        Missed(o.monitor, ids[o.region], o.slot, o.slot, intervals[o.monitor], reason)
        for o, reason in missed if o.region in ids
    )
    ledger.forget([o for o, _ in missed])
