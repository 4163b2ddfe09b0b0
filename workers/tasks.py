from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from loopr import freshness
from loopr.formatting import excerpt
from monitors import ingest

from . import dispatch, node, probe_runner, reports, services
from .models import NodeToken, Rejection

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
        report = reports.sign("results", region, name, results, node.token())
        # The report, not the token, travels; Celery's argsrepr header gets a summary, not a copy.
        ingest_results.apply_async(args=[report], argsrepr=reports.summary(report, len(results)), kwargsrepr="{}")

    done, _malformed = probe_runner.run_batch(checks, report, settings.LOOPR_RESULT_FLUSH_SECONDS)
    return done


@shared_task(name="monitors.ingest_results", ignore_result=True)
def ingest_results(report: dict) -> dict:
    """A probe node's signed report of results. Its name is the monitors'
    (ingest is theirs) but the task is the fleet's: the report's signature is
    checked against the node's token (workers/reports.py) before monitors see
    a single row. A rogue node cannot mark anything down: no valid
    signature for this region, no results."""
    try:
        found, results = NodeToken.verify_report(report, "results")
    except reports.Refused as refused:
        log.warning("ingest: refused a report from %s/%s: %s", excerpt(refused.node, 100), refused.region,
                    refused.reason)
        Rejection.record(refused.node, refused.region, refused.reason, 1)
        return {"refused": refused.reason}
    region, node = report["region"], report["node"]
    outcome = ingest.ingest_results(region, node, results)
    freshness.mark(freshness.INGEST)
    for field, count in outcome.rejected_fields.items():
        Rejection.record(node, region, f"malformed result: {field}", count)
    return outcome.__dict__


@shared_task(name="workers.record_heartbeat", ignore_result=True)
def record_heartbeat(report: dict) -> bool:
    """A probe node's signed heartbeat (workers/reports.py)."""
    try:
        found, payload = NodeToken.verify_report(report, "heartbeat")
    except reports.Refused as refused:
        services.refuse_heartbeat(refused)
        return False
    return services.record_heartbeat(report["node"], found, payload)


@shared_task(name="workers.mark_offline_nodes", ignore_result=True)
def mark_offline_nodes() -> int:
    return services.mark_offline_nodes()
