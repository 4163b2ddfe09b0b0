"""Process wiring: probe nodes announce themselves; beat makes sure the
system's periodic tasks exist and stops between two publishes."""

from __future__ import annotations

import logging
import threading

from celery import signals
from django.conf import settings
from django.db.models.signals import post_migrate
from django.dispatch import receiver
from django.utils import timezone

from . import node, reports

log = logging.getLogger(__name__)


def consumed_queues(consumer) -> list[str]:
    return list(consumer.app.amqp.queues.consume_from or {})


@signals.worker_ready.connect
def apply_broker_users(sender=None, **kwargs) -> None:
    """The central worker (it consumes ingest) brings every region's broker
    user up to date with the tokens when it starts, if Loopr manages them."""
    if not settings.LOOPR_BROKER_ACL or "ingest" not in consumed_queues(sender):
        return
    try:
        from .models import NodeToken

        log.info("broker users updated for regions %s", NodeToken.sync_broker_users())
    except Exception as exc:  # a broker that refuses ACL SETUSER must not stop ingest
        log.error("could not update the probe nodes' broker users: %s", exc)


@signals.worker_ready.connect
def start_node_threads(sender=None, **kwargs) -> None:
    """A probe node announces itself at once and then every heartbeat
    interval, and runs its canary, from the worker's main process."""
    queues = consumed_queues(sender)
    if not any(q.startswith("probe.") for q in queues):
        return
    if f"probe.{settings.LOOPR_REGION}" not in queues:
        log.warning("this worker consumes %s but LOOPR_REGION is %r", queues, settings.LOOPR_REGION)
    if not node.token():
        log.warning("LOOPR_NODE_TOKEN is not set: Loopr will reject this node's results "
                    "(create one with `manage.py create_node_token %s`)", settings.LOOPR_REGION)
    from loopr import __version__

    from .tasks import record_heartbeat

    stop = threading.Event()
    started_at = timezone.now().isoformat()
    concurrency = getattr(sender.controller, "concurrency", 0) if sender.controller else 0
    canary = node.canary()

    def beat() -> None:
        # A broker hiccup must not end the loop.
        while True:
            try:
                report = reports.sign("heartbeat", settings.LOOPR_REGION, sender.hostname, {
                    "version": __version__, "started_at": started_at, "concurrency": concurrency or 0,
                    "impaired": node.is_impaired(), "canary_error": canary.error if canary else "",
                    **node.counters(),
                }, node.token())
                record_heartbeat.apply_async(
                    args=[report], argsrepr=reports.summary(report), kwargsrepr="{}",
                    expires=settings.LOOPR_HEARTBEAT_INTERVAL * 3,
                )
            except Exception:
                log.exception("heartbeat could not be sent")
            if stop.wait(settings.LOOPR_HEARTBEAT_INTERVAL):
                return

    if canary is not None:
        threading.Thread(target=canary.run, args=(stop,), name="loopr-canary", daemon=True).start()
    threading.Thread(target=beat, name="loopr-heartbeat", daemon=True).start()

    @signals.worker_shutdown.connect(weak=False)
    def stop_node_threads(**_kwargs) -> None:
        stop.set()


@signals.beat_init.connect
def stop_beat_between_publishes(sender=None, **kwargs) -> None:
    from .beat import install_stop_handler

    install_stop_handler(sender)


@signals.beat_init.connect
def ensure_schedule_on_beat_start(sender=None, **kwargs) -> None:
    from .schedule import ensure_periodic_tasks

    ensure_periodic_tasks()


@receiver(post_migrate)
def ensure_schedule_after_migrate(sender, app_config=None, **kwargs) -> None:
    if app_config is not None and app_config.name == "workers":
        from .schedule import ensure_periodic_tasks

        ensure_periodic_tasks()
