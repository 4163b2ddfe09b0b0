"""Process wiring: probe nodes announce themselves; beat makes sure the
system's periodic tasks exist."""

from __future__ import annotations

import logging
import threading

from celery import signals
from django.conf import settings
from django.db.models.signals import post_migrate
from django.dispatch import receiver
from django.utils import timezone

log = logging.getLogger(__name__)


def consumed_queues(consumer) -> list[str]:
    return list(consumer.app.amqp.queues.consume_from or {})


@signals.worker_ready.connect
def start_heartbeat(sender=None, **kwargs) -> None:
    queues = consumed_queues(sender)
    if not any(q.startswith("probe.") for q in queues):
        return
    if f"probe.{settings.LOOPR_REGION}" not in queues:
        log.warning("this worker consumes %s but LOOPR_REGION is %r", queues, settings.LOOPR_REGION)
    from loopr import __version__

    from .tasks import record_heartbeat

    stop = threading.Event()
    started_at = timezone.now().isoformat()
    concurrency = getattr(sender.controller, "concurrency", 0) if sender.controller else 0

    def beat() -> None:
        # The first heartbeat goes at once so the region is live before the
        # next dispatch tick; a broker hiccup must not end the loop.
        while True:
            try:
                record_heartbeat.apply_async(
                    args=[sender.hostname, settings.LOOPR_REGION, __version__, started_at, concurrency or 0],
                    expires=settings.LOOPR_HEARTBEAT_INTERVAL * 3,
                )
            except Exception:
                log.exception("heartbeat could not be sent")
            if stop.wait(settings.LOOPR_HEARTBEAT_INTERVAL):
                return

    threading.Thread(target=beat, name="loopr-heartbeat", daemon=True).start()

    @signals.worker_shutdown.connect(weak=False)
    def stop_heartbeat(**_kwargs) -> None:
        stop.set()


@signals.beat_init.connect
def ensure_schedule_on_beat_start(sender=None, **kwargs) -> None:
    from .schedule import ensure_periodic_tasks

    ensure_periodic_tasks()


@receiver(post_migrate)
def ensure_schedule_after_migrate(sender, app_config=None, **kwargs) -> None:
    if app_config is not None and app_config.name == "workers":
        from .schedule import ensure_periodic_tasks

        ensure_periodic_tasks()
