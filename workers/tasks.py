from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from loopr import freshness
from loopr.formatting import excerpt
from monitors import ingest

from . import dispatch, ledger, node, probe_runner, publish, redispatch, reports, services
from .models import NodeToken, Rejection, WorkerNode

log = logging.getLogger(__name__)


@shared_task(name="workers.dispatch_due_checks", ignore_result=True)
def dispatch_due_checks() -> int:
    """The dispatch tick (on the `dispatch` queue, its own process): send
    what is due, then what is owed and overdue (the re-dispatch sweep)."""
    from loopr.celery import app

    def send(queue: str, batch: list[dict], expires: float) -> None:
        # A summary in Celery's argsrepr header: its default, a safe repr of
        # the whole batch, cost more CPU than building the batch.
        run_probe_batch.apply_async(args=[batch], queue=queue, expires=expires,
                                    argsrepr=f"<{len(batch)} checks>", kwargsrepr="{}")

    with app.connection_or_acquire() as conn:
        client = conn.default_channel.client
        owed = ledger.Ledger(client)
        tick = dispatch.Tick(*freshness.read(client, freshness.DISPATCH, freshness.DISPATCH_SERVED))
        sent = dispatch.dispatch_due(send, tick=tick, ledger=owed)
        redispatch.sweep(owed, send)
    freshness.mark(freshness.DISPATCH)
    if tick.served:
        freshness.mark(freshness.DISPATCH_SERVED)
    return sent


@shared_task(name="workers.run_probe_batch", bind=True, ignore_result=True)
def run_probe_batch(self, checks: list) -> int:
    """Runs on a probe node; reports results to the central ingest queue."""
    region, name = settings.LOOPR_REGION, self.request.hostname or settings.LOOPR_REGION

    def publish_report(results: list[dict]) -> None:
        # Signed at each attempt, so a report published after an outage is fresh.
        report = reports.sign("results", region, name, results, node.token())
        # The report, not the token, travels; Celery's argsrepr header gets a summary, not a copy.
        ingest_results.apply_async(args=[report], argsrepr=reports.summary(report, len(results)), kwargsrepr="{}")

    sender = publish.ResultSender(publish_report)

    def report(results: list[dict]) -> None:
        if node.is_impaired():
            for result in results:
                result["impaired"] = True
        node.count(len(results), sum(1 for r in results if not r["ok"]), sum(r.get("lag_ms", 0) for r in results))
        sender(results)

    done, _malformed = probe_runner.run_batch(checks, report, settings.LOOPR_RESULT_FLUSH_SECONDS)
    # Acknowledged (acks_late) only once the broker has the results.
    sender.close()
    return done


# A database or broker that is away (a restart, a failover, a network cut):
# the task is tried again later rather than its message lost. Anything else
# is a bug or bad input, and retrying would not help.
OUTAGES = (OperationalError, InterfaceError, KombuOperationalError, RedisConnectionError, RedisTimeoutError,
           ConnectionError, TimeoutError)
# Retries with publish.backoff (1 s doubling to 30 s, jittered): at least
# ~4 minutes, typically ~6, before a message is given up.
OUTAGE_RETRIES = 20


def retry_after_outage(task, exc: Exception):
    """Publish the task again after a jittered backoff (a new message: with
    acks_late the one being run is acknowledged when the task ends)."""
    attempt = task.request.retries
    log.warning("%s: %s: %s; retry %d of %d", task.name, type(exc).__name__, exc, attempt + 1, OUTAGE_RETRIES)
    return task.retry(exc=exc, countdown=publish.backoff(attempt), max_retries=OUTAGE_RETRIES)


@shared_task(name="monitors.ingest_results", bind=True, ignore_result=True)
def ingest_results(self, report: dict) -> dict:
    """A probe node's signed report of results. Its name is the monitors'
    (ingest is theirs) but the task is the fleet's: the report's signature is
    checked against the node's token (workers/reports.py) before monitors see
    a single row. A rogue node cannot mark anything down: no valid
    signature for this region, no results.

    Retried through database and broker outages: ingest is idempotent."""
    try:
        return _ingest(report)
    except OUTAGES as exc:
        raise retry_after_outage(self, exc)


def _ingest(report: dict) -> dict:
    try:
        found, results = NodeToken.verify_report(report, "results")
    except reports.Refused as refused:
        log.warning("ingest: refused a report from %s/%s: %s", excerpt(refused.node, 100), refused.region,
                    refused.reason)
        Rejection.record(refused.node, refused.region, refused.reason, 1)
        return {"refused": refused.reason}
    region, node = report["region"], report["node"]
    outcome = ingest.ingest_results(region, node, results, node_id=WorkerNode.id_for(str(node)[:200], found))
    _settle(region, results)
    freshness.mark(freshness.INGEST)
    for field, count in outcome.rejected_fields.items():
        Rejection.record(node, region, f"malformed result: {field}", count)
    return outcome.__dict__


def _settle(region: str, results: list) -> None:
    """Strike the message's checks off what the probes owe (stored or
    duplicate alike). A failure here only means a needless re-dispatch."""
    from loopr.celery import app

    try:
        with app.connection_or_acquire() as conn:
            ledger.Ledger(conn.default_channel.client).settle(region, results)
    except Exception:
        log.warning("could not settle %s results from %s in the ledger", len(results), region, exc_info=True)


@shared_task(name="workers.record_heartbeat", bind=True, ignore_result=True)
def record_heartbeat(self, report: dict) -> bool:
    """A probe node's signed heartbeat (workers/reports.py). Retried through
    outages too, but never past the heartbeat's own expiry (three intervals,
    which verification enforces): a stale heartbeat must not make a dead node
    look alive."""
    try:
        try:
            found, payload = NodeToken.verify_report(report, "heartbeat")
        except reports.Refused as refused:
            services.refuse_heartbeat(refused)
            return False
        return services.record_heartbeat(report["node"], found, payload)
    except OUTAGES as exc:
        raise retry_after_outage(self, exc)


@shared_task(name="workers.mark_offline_nodes", ignore_result=True)
def mark_offline_nodes() -> int:
    return services.mark_offline_nodes()
