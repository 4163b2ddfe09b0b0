from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import dispatch, probe_runner
from .models import Region, WorkerNode

log = logging.getLogger(__name__)


@shared_task(name="workers.dispatch_due_checks", ignore_result=True)
def dispatch_due_checks() -> int:
    def send(queue: str, batch: list[dict], expires: float) -> None:
        run_probe_batch.apply_async(args=[batch], queue=queue, expires=expires)

    return dispatch.dispatch_due(send)


@shared_task(name="workers.run_probe_batch", bind=True, ignore_result=True)
def run_probe_batch(self, checks: list) -> int:
    """Runs on a probe node; reports results to the central ingest queue."""
    region, node = settings.LOOPR_REGION, self.request.hostname or settings.LOOPR_REGION

    def report(results: list[dict]) -> None:
        ingest_results_signature().apply_async(args=[region, node, results])

    done, _malformed = probe_runner.run_batch(checks, report, settings.LOOPR_RESULT_FLUSH_SECONDS)
    return done


def ingest_results_signature():
    # By name: a probe node needs no import of the ingest code's dependencies.
    from loopr.celery import app

    return app.signature("monitors.ingest_results")


@shared_task(name="workers.record_heartbeat", ignore_result=True)
def record_heartbeat(node: str, region: str, version: str = "", started_at: str | None = None,
                     concurrency: int = 0) -> None:
    now = timezone.now()
    region_obj, _ = Region.objects.get_or_create(name=region)
    Region.objects.filter(pk=region_obj.pk).update(last_seen_at=now)
    WorkerNode.objects.update_or_create(
        name=node,
        defaults={
            "region": region_obj,
            "version": version[:50],
            "concurrency": concurrency,
            "started_at": parse_datetime(started_at) if started_at else None,
            "last_heartbeat_at": now,
        },
    )
