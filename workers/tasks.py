from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from loopr import freshness
from monitors import ingest

from . import dispatch, node, probe_runner, services
from .models import NodeToken, Rejection, WorkerNode

log = logging.getLogger(__name__)


@shared_task(name="workers.dispatch_due_checks", ignore_result=True)
def dispatch_due_checks() -> int:
    def send(queue: str, batch: list[dict], expires: float) -> None:
        run_probe_batch.apply_async(args=[batch], queue=queue, expires=expires)

    sent = dispatch.dispatch_due(send)
    freshness.mark(freshness.DISPATCH)
    return sent


@shared_task(name="workers.run_probe_batch", bind=True, ignore_result=True)
def run_probe_batch(self, checks: list) -> int:
    """Runs on a probe node; reports results to the central ingest queue."""
    region, name = settings.LOOPR_REGION, self.request.hostname or settings.LOOPR_REGION

    def report(results: list[dict]) -> None:
        impaired = node.is_impaired()
        for result in results:
            result["impaired"] = impaired
        node.count(len(results), sum(1 for r in results if not r["ok"]), sum(r.get("lag_ms", 0) for r in results))
        ingest_results.apply_async(args=[region, name, results], kwargs={"token": node.token()})

    done, _malformed = probe_runner.run_batch(checks, report, settings.LOOPR_RESULT_FLUSH_SECONDS)
    return done


@shared_task(name="monitors.ingest_results", ignore_result=True)
def ingest_results(region: str, node: str, results: list, token: str = "") -> dict:
    """Results from a probe node. Its name is the monitors' (ingest is
    theirs) but the task is the fleet's: a node is trusted here, by its
    token, before monitors see a single row. A rogue node cannot mark
    anything down: no valid token for this region, no results."""
    found, reason = NodeToken.verify(token, region)
    if found is None:
        count = len(results) if isinstance(results, list) else 1
        log.warning("ingest: rejected %d results from %s/%s: %s", count, node, region, reason)
        Rejection.record(str(node), str(region), reason, count)
        return {"rejected": count}
    outcome = ingest.ingest_results(region, node, results, node_id=WorkerNode.id_for(str(node)[:200], found))
    freshness.mark(freshness.INGEST)
    if outcome.rejected:
        log.warning("ingest from %s/%s: %s", region, node, outcome)
    return outcome.__dict__


@shared_task(name="workers.record_heartbeat", ignore_result=True)
def record_heartbeat(node: str, region: str, token: str = "", **report) -> bool:
    return services.record_heartbeat(node, region, token, report)


@shared_task(name="workers.mark_offline_nodes", ignore_result=True)
def mark_offline_nodes() -> int:
    return services.mark_offline_nodes()
