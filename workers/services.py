"""Node bookkeeping on the central side: heartbeats, offline sweep, drain."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from loopr.formatting import excerpt

from .choices import SERVING_STATES, NodeState
from .models import NodeToken, Region, Rejection, WorkerNode, live_cutoff
from .reports import Refused

log = logging.getLogger(__name__)


def refuse_heartbeat(refused: Refused) -> None:
    """A heartbeat without a valid signature is counted and never makes a
    region live; a node whose token was revoked shows as revoked."""
    log.warning("heartbeat refused from %s/%s: %s", excerpt(refused.node, 100), refused.region, refused.reason)
    Rejection.record(refused.node, refused.region, f"heartbeat: {refused.reason}", 1)
    if refused.node:
        WorkerNode.objects.filter(name=refused.node, token__revoked_at__isnull=False).update(state=NodeState.REVOKED)


def record_heartbeat(name: str, found: NodeToken, report: object) -> bool:
    """Record the heartbeat of node `name`, whose report `found` signed."""
    if not isinstance(report, dict):
        refuse_heartbeat(Refused(Refused.MALFORMED, found.region.name, name))
        return False
    now = timezone.now()
    with transaction.atomic():
        node = WorkerNode.objects.select_for_update().filter(name=name).first()
        if node is None:
            node = WorkerNode(name=name, last_heartbeat_at=now)
        node.region, node.token, node.last_heartbeat_at = found.region, found, now
        # Draining and revoked are the operator's word; a heartbeat does not undo them.
        if node.state not in (NodeState.DRAINING, NodeState.REVOKED):
            node.state = NodeState.IMPAIRED if report.get("impaired") else NodeState.ONLINE
        node.version = str(report.get("version", ""))[:50]
        node.concurrency = _int(report.get("concurrency"))
        started = report.get("started_at")
        node.started_at = parse_datetime(started) if isinstance(started, str) else node.started_at
        node.checks_done = _int(report.get("checks_done"))
        node.failures = _int(report.get("failures"))
        lag = report.get("mean_lag_ms")
        node.mean_lag_ms = float(lag) if isinstance(lag, (int, float)) else None
        node.canary_error = str(report.get("canary_error", ""))[:2000]
        node.save()
        if node.state in SERVING_STATES:
            Region.objects.filter(pk=found.region_id).update(last_seen_at=now)
        NodeToken.objects.filter(pk=found.pk).update(last_used_at=now)
    return True


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def mark_offline_nodes() -> int:
    """Nodes silent for three heartbeat intervals are offline."""
    return WorkerNode.objects.filter(
        state__in=SERVING_STATES, last_heartbeat_at__lt=live_cutoff()
    ).update(state=NodeState.OFFLINE)


def drain(node: WorkerNode) -> None:
    """The node finishes what it holds and takes nothing new."""
    from loopr.celery import app

    node.state = NodeState.DRAINING
    node.save(update_fields=["state"])
    app.control.cancel_consumer(node.region.queue, destination=[node.name])


def undrain(node: WorkerNode) -> None:
    from loopr.celery import app

    node.state = NodeState.ONLINE
    node.save(update_fields=["state"])
    app.control.add_consumer(node.region.queue, destination=[node.name])
