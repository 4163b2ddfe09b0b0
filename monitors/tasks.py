from __future__ import annotations

import logging

from celery import shared_task

from workers.models import NodeToken, Rejection

from . import ingest, maintenance, retention, state

log = logging.getLogger(__name__)


@shared_task(name="monitors.ingest_results", ignore_result=True)
def ingest_results(region: str, node: str, results: list, token: str = "") -> dict:
    # A rogue node cannot mark anything down: no valid token for this
    # region, no results.
    found, reason = NodeToken.verify(token, region)
    if found is None:
        count = len(results) if isinstance(results, list) else 1
        log.warning("ingest: rejected %d results from %s/%s: %s", count, node, region, reason)
        Rejection.record(str(node), str(region), reason, count)
        return {"rejected": count}
    outcome = ingest.ingest_results(region, node, results)
    if outcome.rejected:
        log.warning("ingest from %s/%s: %s", region, node, outcome)
    return outcome.__dict__


@shared_task(name="monitors.prune_results", ignore_result=True)
def prune_results() -> int:
    deleted, more_left = retention.prune_results()
    if more_left:
        prune_results.delay()
    return deleted


@shared_task(name="monitors.sync_maintenance", ignore_result=True)
def sync_maintenance() -> tuple[int, int]:
    return maintenance.sync_maintenance()


@shared_task(name="monitors.decide_overdue_verdicts", ignore_result=True)
def decide_overdue_verdicts() -> int:
    return state.decide_overdue_verdicts()
