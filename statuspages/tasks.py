from __future__ import annotations

from celery import shared_task

from . import snapshot

PAGES_PER_TASK = 10


@shared_task(name="statuspages.refresh_snapshots", ignore_result=True)
def refresh_snapshots() -> int:
    """From beat: the pages whose snapshot is stale, to be rebuilt a few at a
    time (so that the central worker's processes share a long list)."""
    stale = sorted(snapshot.stale())
    for first in range(0, len(stale), PAGES_PER_TASK):
        build_snapshots.delay(stale[first : first + PAGES_PER_TASK])
    return len(stale)


@shared_task(name="statuspages.build_snapshots", ignore_result=True)
def build_snapshots(page_ids: list[int]) -> list[int]:
    # Stale pages only: a message delivered twice, or one queued behind a
    # rebuild, builds nothing again.
    return snapshot.refresh_stale(page_ids)
