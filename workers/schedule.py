"""The system's periodic tasks, kept in django-celery-beat's tables so an
operator can see and tune them in the admin.

There is deliberately no periodic task per monitor: beat's scheduler walks
every entry on each tick and stalls at a few thousand. One dispatch tick a
second claims whatever is due instead.
"""

from __future__ import annotations

from django_celery_beat.models import IntervalSchedule, PeriodicTask

SYSTEM_TASKS = [
    # name, task, every (seconds), expires (seconds): a stale tick is useless,
    # the next one does the same work.
    ("loopr: dispatch due checks", "workers.dispatch_due_checks", 1, 5),
    ("loopr: prune old results", "monitors.prune_results", 3600, 1800),
    ("loopr: roll up results", "monitors.roll_up_results", 30, 30),
    ("loopr: sync maintenance windows", "monitors.sync_maintenance", 10, 10),
    ("loopr: sweep undelivered notifications", "notifications.sweep_notifications", 5, 5),
    ("loopr: send reminders", "notifications.send_reminders", 30, 30),
    ("loopr: escalate unacknowledged incidents", "notifications.escalate", 15, 15),
    ("loopr: decide overdue verdicts", "monitors.decide_overdue_verdicts", 1, 5),
    ("loopr: mark silent nodes offline", "workers.mark_offline_nodes", 5, 5),
    ("loopr: sweep late heartbeats", "monitors.sweep_late_heartbeats", 1, 5),
    ("loopr: prune old pings", "monitors.prune_pings", 3600, 1800),
    ("loopr: refresh status pages", "statuspages.refresh_snapshots", 5, 5),
]


def ensure_periodic_tasks() -> None:
    """Create missing system tasks; never overwrite an operator's edits."""
    for name, task, every, expires in SYSTEM_TASKS:
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        schedule, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.create(name=name, task=task, interval=schedule, expire_seconds=expires)
