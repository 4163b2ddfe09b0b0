"""Acknowledging an incident: someone is on it.

Whoever acknowledges (the API, the admin, or the signed link in an alert),
the incident records who, when, how and why, in the transaction that
announces `acknowledged`; what listens to announcements (the notifications
app) then stops reminders and escalation and tells the channels already
paged. The link carries a signed token: single purpose (its own salt),
expiring (LOOPR_ACK_LINK_MAX_AGE), and good only while the incident is open.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from teams import audit

from .announcements import announced
from .choices import Event
from .locks import lock_monitor
from .models import Incident, Monitor

SALT = "loopr.incident.acknowledge"


class NotAcknowledgeable(Exception):
    """The incident is resolved, or acknowledged already."""


def acknowledge(incident_id: int, by: str, via: str, note: str = "", request=None) -> Incident:
    """Acknowledge an open incident; NotAcknowledgeable if it is resolved or
    was acknowledged already. The team's audit log gets an `acknowledge`
    entry in the same transaction: the request's user, or `by` when no one
    is signed in (a link in an alert)."""
    monitor_id = Incident.objects.filter(pk=incident_id).values_list("monitor_id", flat=True).first()
    if monitor_id is None:
        raise Incident.DoesNotExist(incident_id)
    with transaction.atomic():
        # The monitor first, then its incident (the lock order, monitors/locks.py):
        # the monitor's lock serialises this with ingest resolving the incident.
        monitor = lock_monitor(monitor_id)
        incident = Incident.objects.select_for_update().get(pk=incident_id)
        if monitor is None or not incident.acknowledgeable():
            raise NotAcknowledgeable(incident_id)
        now = timezone.now()
        incident.record_acknowledgement(by, via, note, now)
        audit.record(request, "acknowledge", incident, {
            "acknowledged_by": [None, incident.acknowledged_by], "acknowledged_via": [None, via],
            **({"acknowledgement_note": [None, incident.acknowledgement_note]} if note else {})}, actor_name=by)
        details = f"by {incident.acknowledged_by}" + (f": {incident.acknowledgement_note}" if note else "")
        announced.send(Monitor, monitor=monitor, event=Event.ACKNOWLEDGED, incident=incident, degraded_only=False,
                       details=details, at=now)
    return incident


def link_token(incident_id: int, channel_id: int | None = None) -> str:
    """The token of an incident's one-click acknowledgement link (which
    channel it went to names who acknowledged)."""
    return signing.TimestampSigner(salt=SALT).sign_object({"i": incident_id, "c": channel_id})


def read_link_token(token: str) -> tuple[int, int | None]:
    """(incident id, channel id) from a link's token; signing.BadSignature
    (or its SignatureExpired) when forged, mangled or too old."""
    value = signing.TimestampSigner(salt=SALT).unsign_object(token, max_age=settings.LOOPR_ACK_LINK_MAX_AGE)
    if not isinstance(value, dict) or not isinstance(value.get("i"), int):
        raise signing.BadSignature("not an acknowledgement token")
    channel = value.get("c")
    return value["i"], channel if isinstance(channel, int) else None
