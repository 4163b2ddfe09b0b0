"""What follows from a slot's verdict: the state machine (`Monitor.apply_check`)
moved, and this records the transition, opens or closes the incident,
notices flapping and announces what people must hear (`announcements.announced`;
the notifications app writes its outbox from it). Also the
sweep that judges slots whose regions never all reported.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .announcements import announced
from .bulk import save_status
from .choices import Event, Health
from .locks import lock_monitor
from .models import Check, Incident, Monitor, StatusChange, Transition


def judge(monitor: Monitor, check: Check | None) -> int:
    """Feed a slot's verdict to the state machine and act on what it says;
    returns the number of transitions (0 or 1)."""
    changed = 0
    if check is not None:
        transition = monitor.apply_check(check)
        if transition is not None:
            record_transition(monitor, transition)
            changed = 1
    # Settled by the checks' own clock, as the changes were counted.
    if monitor.last_checked_at is not None:
        monitor.settle_flapping(monitor.last_checked_at)
    announce(monitor)
    return changed


def decide_overdue_verdicts(now: datetime | None = None, limit: int = 1000) -> int:
    """Slots some expected region never reported (its node died, its link is
    cut): judged with what arrived, once their deadline passed."""
    now = now or timezone.now()
    decided = 0
    for pk in Monitor.objects.filter(verdict_due_at__lte=now).values_list("pk", flat=True)[:limit]:
        with transaction.atomic():
            # The monitor before its incident (the lock order, monitors/locks.py).
            monitor = lock_monitor(pk, verdict_due_at__lte=now)
            if monitor is None:
                continue  # ingest decided it meanwhile
            judge(monitor, monitor.verdict(set(), now, settings.LOOPR_VERDICT_GRACE, force=True))
            save_status([monitor])
            decided += 1
    return decided


def record_transition(monitor: Monitor, transition: Transition) -> None:
    """Keep the timeline, open or close the incident, and notice flapping."""
    if transition.new == Health.DOWN and monitor.current_incident_id is None:
        open_incident(monitor, transition)
    StatusChange.objects.create(
        monitor=monitor, incident_id=monitor.current_incident_id, old=transition.old, new=transition.new,
        at=transition.at, cause=transition.cause, region=transition.region,
    )
    if transition.old == Health.DOWN and monitor.current_incident_id is not None:
        Incident.objects.filter(pk=monitor.current_incident_id).update(resolved_at=transition.at)
        monitor.current_incident = None
    if not monitor.is_flapping:
        notice_flapping(monitor, transition.at)


def open_incident(monitor: Monitor, transition: Transition) -> None:
    monitor.current_incident = Incident.objects.create(
        monitor=monitor, started_at=monitor.failing_since or transition.at, confirmed_at=transition.at,
        cause_kind=monitor.failure_kind, cause=monitor.failure_message,
        regions=sorted(monitor.failure_regions) or ([transition.region] if transition.region else []),
        region_errors=monitor.failure_regions,
    )


def notice_flapping(monitor: Monitor, at: datetime) -> None:
    window_start = at - timedelta(seconds=monitor.flap_window)
    if monitor.status_changes.filter(at__gt=window_start).count() > monitor.flap_threshold:
        monitor.is_flapping = True
        announced.send(Monitor, monitor=monitor, event=Event.FLAPPING, incident=monitor.current_incident, at=at,
                       degraded_only=False,
                       details=f"changed state more than {monitor.flap_threshold} times in "
                               f"{monitor.flap_window // 60} min; alerts are held until it settles")


def announce(monitor: Monitor, at: datetime | None = None) -> None:
    """Tell the channels whatever changed since they were last told."""
    announcement = monitor.announcement()
    if announcement is None:
        return
    incident, details = None, ""
    if announcement.degraded_only:
        last = monitor.status_changes.order_by("-at", "-id").first()
        details = last.cause if last else ""
    elif announcement.event == Event.DOWN:
        incident = monitor.current_incident
    else:  # a recovery carries the outage it ends
        incident = monitor.incidents.order_by("-started_at").first()
    announced.send(Monitor, monitor=monitor, event=announcement.event, incident=incident,
                   degraded_only=announcement.degraded_only, details=details, at=at or monitor.status_changed_at)
