"""Writing notifications into the outbox and delivering them."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from loopr.formatting import format_duration

from .choices import DeliveryStatus, Event
from .context import channel_test_context, event_context
from .models import Channel, DeliveryAttempt, Escalation, Notification

log = logging.getLogger(__name__)


def notify(monitor, event: str, *, incident=None, degraded_only: bool = False, details: str = "",
           at: datetime | None = None, channels=None) -> list[Notification]:
    """Write one outbox row per interested channel, in the caller's transaction;
    their delivery is queued when (and only if) it commits."""
    channels = list(channels if channels is not None else monitor.channels.all())
    at = at or timezone.now()
    context = event_context(monitor, event, incident, details, at)
    rows = Notification.objects.bulk_create(
        [
            Notification(channel=c, monitor=monitor, incident=incident, event=event, context=context, created_at=at,
                         next_attempt_at=held_until(c, event, at) or at)
            for c in channels
            if c.wants(event, degraded_only)
        ]
    )
    if rows:
        # Those held by quiet hours are not due yet: the sweep sends them when the hours end.
        ids = [str(n.pk) for n in rows if n.next_attempt_at <= at]
        transaction.on_commit(lambda: enqueue(ids))
    return rows


def held_until(channel: Channel, event: str, at: datetime) -> datetime | None:
    """Down alerts always go; anything else waits out the channel's quiet hours."""
    return None if event == Event.DOWN else channel.quiet_until(at)


def write_outbox(sender, *, monitor, event: str, incident=None, degraded_only: bool = False, details: str = "",
                 at: datetime | None = None, **kwargs) -> None:
    """`monitors.announcements.announced`, received: one notification per
    channel of the monitor that wants it. An acknowledgement goes to the
    channels that were told about the incident: those who were paged learn
    that someone is on it."""
    channels = None
    if incident is not None and event in {Event.UP, Event.ACKNOWLEDGED}:
        # Resolved or someone is on it: no further step fires.
        Escalation.objects.filter(incident=incident).stop()
    if event == Event.ACKNOWLEDGED and incident is not None:
        channels = told_about(incident)
    elif monitor.escalation_policy_id is not None and incident is not None:
        channels = escalation_audience(monitor, event, incident, at or timezone.now())
    notify(monitor, event, incident=incident, degraded_only=degraded_only, details=details, at=at,
           channels=channels)


def escalation_audience(monitor, event: str, incident, at: datetime) -> list[Channel]:
    """With an escalation policy, an outage's down alert goes to the policy's
    first step (and starts the escalation); what follows it (recovery,
    flapping, reminders) to every channel told so far."""
    if event == Event.DOWN:
        existing = Escalation.objects.filter(incident=incident).first()
        if existing is None:  # the first announcement of this outage
            return Escalation.begin(incident, monitor, monitor.escalation_policy, at)[1]
    told = told_about(incident)
    return told + [c for c in monitor.channels.all() if c not in told]


def told_about(incident) -> list[Channel]:
    """The enabled channels that were sent the incident's down (or a reminder or escalation of it)."""
    told = Notification.objects.filter(incident=incident, event__in=[Event.DOWN, Event.REMINDER]).values("channel_id")
    return list(Channel.objects.filter(pk__in=told, enabled=True))


def ack_url(notification: Notification) -> str:
    """The signed one-click acknowledgement link for an alert about an
    incident that can still be acknowledged; "" for any other."""
    from monitors.acknowledgement import link_token

    if notification.event not in {Event.DOWN, Event.REMINDER} or notification.incident is None:
        return ""
    if not notification.incident.acknowledgeable():
        return ""
    token = link_token(notification.incident_id, notification.channel_id)
    return (settings.LOOPR_PUBLIC_URL or QUICK_START_URL) + reverse("acknowledge", args=[token])


# An alert has no request to take a host from: without LOOPR_PUBLIC_URL its
# links point where `dev.py run` serves.
QUICK_START_URL = "http://127.0.0.1:8000"
DELIVER_TASK = "notifications.deliver_notification"


def queue_delivery(notification_id: str, countdown: float | None = None) -> None:
    # By name (tasks.py builds on this module, not the other way round); the
    # task routes send it to the notify queue.
    from loopr.celery import app

    app.send_task(DELIVER_TASK, args=[notification_id], countdown=countdown)


def enqueue(ids: list[str]) -> None:
    for notification_id in ids:
        try:
            queue_delivery(notification_id)
        except Exception:  # broker down: the sweep will find the row
            log.exception("could not queue notification %s; the sweep will retry", notification_id)


# Added to the transport's own timeout to make a sender's lease: time to
# render, to write the attempt before and after, and for clocks of the worker
# and the sweep's that disagree a little.
LEASE_MARGIN = 5.0


def deliver(notification_id: str, now: datetime | None = None) -> DeliveryAttempt | None:
    """One delivery attempt, if the notification is due and nobody else holds it."""
    from .render import render

    try:
        notification_id = str(uuid.UUID(str(notification_id)))
    except ValueError:
        log.error("deliver: dropped a malformed notification id %r", notification_id)
        return None
    notification = Notification.objects.select_related("channel", "incident").filter(pk=notification_id).first()
    if notification is None:
        return None
    channel = notification.channel
    transport = channel.transport()
    attempt = claim(notification, transport.timeout, now or timezone.now())
    if attempt is None:
        return None  # sent already, not due yet, or another worker is on it
    # The link is made at delivery, not frozen in the context: an alert
    # retried after the incident was acknowledged no longer offers it.
    context = {**notification.context, "id": str(notification.pk), "ack_url": ack_url(notification)}
    delivery = transport.send(render(context))
    delay = settle(notification, attempt, delivery, timezone.now())
    if delay is not None and delay <= settings.LOOPR_NOTIFY_REQUEUE_MAX:
        try:
            queue_delivery(str(notification.pk), countdown=delay)
        except Exception:
            log.exception("could not queue the retry of %s; the sweep will", notification.pk)
    return attempt


def claim(notification: Notification, timeout: float, now: datetime) -> DeliveryAttempt | None:
    """Lease the notification to this sender for one attempt of at most
    `timeout` seconds, and record the attempt before anything is sent: once
    the bytes leave, a receiver may have the message whatever happens to us."""
    lease = now + timedelta(seconds=timeout + LEASE_MARGIN)
    with transaction.atomic():
        # The notification, then its attempts (the lock order, monitors/locks.py).
        if not Notification.objects.due(now).filter(pk=notification.pk).update(
            leased_until=lease, attempts=F("attempts") + 1
        ):
            return None
        # A lease can only be taken over once the sender before us held it
        # past its timeout: that sender is dead, and its attempt never ended.
        notification.delivery_attempts.interrupt()
        notification.refresh_from_db(fields=["attempts", "leased_until"])
        return DeliveryAttempt.objects.create(notification=notification, at=now)


def settle(notification: Notification, attempt: DeliveryAttempt, delivery, now: datetime) -> float | None:
    """Complete the attempt and, while this sender still holds the lease,
    decide what happens next; returns the delay before the next attempt, or
    None when it is settled or no longer ours."""
    with transaction.atomic():
        # The notification, then its attempt and channel (the lock order, monitors/locks.py).
        held = Notification.objects.select_for_update().filter(
            pk=notification.pk, leased_until=notification.leased_until).exists()
        attempt.complete(delivery)
        if not held:
            # We outlived the lease and the sweep took the notification over:
            # our outcome stays on our attempt; the next sender settles it.
            log.warning("notification %s: the attempt outlived its lease; its successor decides", notification.pk)
            return None
        delay = record_outcome(notification, delivery, now)
        if delivery.disable_channel:
            notification.channel.disable(
                f"Disabled after {delivery.status_code or 'a permanent'} reply: {delivery.error}")
    return delay


def record_outcome(notification: Notification, delivery, now: datetime) -> float | None:
    """Returns the delay before the next attempt, or None when it is settled."""
    notification.leased_until = None
    delay = None
    if delivery.ok:
        notification.status, notification.sent_at, notification.last_error = DeliveryStatus.SENT, now, ""
    else:
        notification.last_error = delivery.error[:2000]
        delay = None if delivery.permanent else notification.retry_delay(delivery.retry_after)
        if delay is None:
            notification.status = DeliveryStatus.FAILED
        else:
            notification.next_attempt_at = now + timedelta(seconds=delay)
    notification.save(update_fields=["leased_until", "status", "sent_at", "last_error", "next_attempt_at"])
    return delay


def sweep(now: datetime | None = None, limit: int = 1000) -> int:
    """Queue every due notification whose task was lost (broker down when it
    was written, worker killed mid-delivery, retry beyond the requeue limit),
    and mark the attempts of senders that died mid-send as interrupted."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.LOOPR_NOTIFY_SWEEP_GRACE)
    ids = [str(i) for i in Notification.objects.lost(now, grace).order_by("next_attempt_at")
           .values_list("pk", flat=True)[:limit]]
    if ids:
        # The lease is checked again in the same statement: a sender that took
        # one of these meanwhile holds a new lease, and its attempt is live.
        DeliveryAttempt.objects.filter(notification_id__in=ids, notification__leased_until__lt=now).interrupt()
    enqueue(ids)
    return len(ids)


def send_test(channel: Channel) -> tuple[Notification, DeliveryAttempt | None]:
    """A clearly marked test message, delivered now and never retried."""
    notification = Notification.objects.create(channel=channel, event=Event.TEST,
                                               context=channel_test_context(channel))
    return notification, deliver(str(notification.pk))


def send_reminders(now: datetime | None = None) -> int:
    """While a monitor stays down, remind the channels that asked for it."""
    from monitors.choices import Health
    from monitors.models import Monitor

    now = now or timezone.now()
    reminding = Channel.objects.filter(enabled=True, reminder_interval__isnull=False)
    # Runs every 30 s, and most installations have no reminders at all: then
    # this one lookup on a partial index is the whole sweep.
    if not reminding.exists():
        return 0
    down = Monitor.objects.filter(
        health=Health.DOWN, current_incident__isnull=False, paused=False, in_maintenance=False, is_flapping=False,
        current_incident__acknowledged_at__isnull=True, channels__in=reminding,
    )
    candidates = down.values_list("pk", "current_incident_id").distinct()
    return sum(remind(monitor_id, incident_id, now) for monitor_id, incident_id in candidates)


def remind(monitor_id: int, incident_id: int, now: datetime) -> int:
    """The reminders due for one outage; returns how many were written."""
    from monitors.choices import Health
    from monitors.locks import lock_monitor

    with transaction.atomic():
        # The monitor, not the incident, is locked, and first: ingest holds it
        # while it writes the incident (the lock order, monitors/locks.py). It
        # also keeps two overlapping sweeps from both reminding.
        monitor = lock_monitor(monitor_id, current_incident_id=incident_id, health=Health.DOWN, paused=False,
                               in_maintenance=False, is_flapping=False,
                               current_incident__acknowledged_at__isnull=True)
        if monitor is None:
            return 0  # it recovered, was paused, began flapping or was acknowledged while we waited
        sent = 0
        for channel in monitor.channels.filter(enabled=True, reminder_interval__isnull=False):
            last = (
                Notification.objects.filter(incident_id=incident_id, channel=channel,
                                            event__in=[Event.DOWN, Event.REMINDER])
                .order_by("-created_at").values_list("created_at", flat=True).first()
            )
            # Never told it is down (it went down in maintenance): the
            # down alert comes first, from the state machine.
            if last is None or last > now - timedelta(seconds=channel.reminder_interval):
                continue
            sent += len(notify(monitor, Event.REMINDER, incident=monitor.current_incident, channels=[channel],
                               at=now, details=""))
    return sent


def escalate(now: datetime | None = None, limit: int = 500) -> int:
    """Fire every escalation step that is due; returns how many notifications were written."""
    now = now or timezone.now()
    # Every 15 s, and almost always nothing is due: then this one lookup on a
    # partial index is the whole sweep.
    due = list(Escalation.objects.due(now).order_by("due_at").values_list("pk", "monitor_id")[:limit])
    return sum(escalate_one(pk, monitor_id, now) for pk, monitor_id in due)


def escalate_one(escalation_id: int, monitor_id: int, now: datetime) -> int:
    """One due step of one escalation, written to the outbox in the
    transaction that moves the escalation on: a step is sent once, and a
    sweep that dies before committing leaves it due for the next."""
    from monitors.locks import lock_monitor

    with transaction.atomic():
        # The monitor, then the escalation, then the notifications (the lock
        # order, monitors/locks.py); the monitor's lock also serialises this
        # with ingest resolving the incident and with an acknowledgement.
        monitor = lock_monitor(monitor_id)
        escalation = (Escalation.objects.select_for_update(of=("self",)).select_related("policy", "incident")
                      .filter(pk=escalation_id).due(now).first())
        if monitor is None or escalation is None:
            return 0  # gone, or another sweep fired it first
        incident = escalation.incident
        if not incident.acknowledgeable() or monitor.current_incident_id != incident.pk:
            escalation.due_at = None  # resolved or acknowledged: escalation is over
            escalation.save(update_fields=["due_at"])
            return 0
        if monitor.paused or monitor.in_maintenance:
            # Nobody is paged about a paused monitor or one in maintenance; look again in a minute.
            escalation.due_at = now + timedelta(minutes=1)
            escalation.save(update_fields=["due_at"])
            return 0
        index, policy = escalation.next_step, escalation.policy
        channels = policy.channels_of(index)
        details = (f"Escalation step {index + 1} of {len(policy.steps)}: still unacknowledged "
                   f"{format_duration((now - incident.confirmed_at).total_seconds())} after it was confirmed.")
        sent = notify(monitor, Event.DOWN, incident=incident, channels=channels, at=now, details=details)
        escalation.record(index, channels, now)
        escalation.advance()
        escalation.save()
    return len(sent)
