from __future__ import annotations

from celery import shared_task

from loopr import freshness

from . import services


@shared_task(name=services.DELIVER_TASK, ignore_result=True)
def deliver_notification(notification_id: str) -> bool:
    return services.deliver(notification_id) is not None


@shared_task(name="notifications.sweep_notifications", ignore_result=True)
def sweep_notifications() -> int:
    swept = services.sweep()
    # The sweep is the central worker's steadiest loop: /healthz judges the
    # worker by it (loopr/health.py).
    freshness.mark(freshness.CENTRAL)
    return swept


@shared_task(name="notifications.send_reminders", ignore_result=True)
def send_reminders() -> int:
    return services.send_reminders()


@shared_task(name="notifications.escalate", ignore_result=True)
def escalate() -> int:
    return services.escalate()
