from __future__ import annotations

import logging

from celery import shared_task

from . import services

log = logging.getLogger(__name__)


@shared_task(name="monitors.ingest_results", ignore_result=True)
def ingest_results(region: str, node: str, results: list) -> dict:
    outcome = services.ingest_results(region, node, results)
    if outcome.rejected:
        log.warning("ingest from %s/%s: %s", region, node, outcome)
    return outcome.__dict__


@shared_task(name="monitors.prune_results", ignore_result=True)
def prune_results() -> int:
    deleted, more_left = services.prune_results()
    if more_left:
        prune_results.delay()
    return deleted


@shared_task(name="monitors.sync_maintenance", ignore_result=True)
def sync_maintenance() -> tuple[int, int]:
    return services.sync_maintenance()
