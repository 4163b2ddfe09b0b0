"""The one page Loopr serves without a login: the signed acknowledgement
link in an alert.

Opening the link (GET) only shows the incident and a button; acknowledging
takes the button's POST. Chat apps and mail scanners open links to preview
them, and a preview must not acknowledge anything.
"""

from __future__ import annotations

from django.core import signing
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from .acknowledgement import NotAcknowledgeable, acknowledge, read_link_token
from .choices import AcknowledgedVia
from .models import Incident


@require_http_methods(["GET", "POST"])
def acknowledge_by_link(request, token: str):
    try:
        incident_id, channel_id = read_link_token(token)
    except signing.SignatureExpired:
        return _page(request, None, "This link has expired. Acknowledge the incident in Loopr instead.", status=410)
    except signing.BadSignature:
        return _page(request, None, "This link is not valid.", status=404)
    incident = Incident.objects.select_related("monitor").filter(pk=incident_id).first()
    if incident is None:
        return _page(request, None, "This incident no longer exists.", status=404)
    if request.method == "POST" and incident.acknowledgeable():
        note = request.POST.get("note", "").strip()[:1000]
        try:
            incident = acknowledge(incident.pk, by=_who(channel_id), via=AcknowledgedVia.LINK, note=note,
                                   request=request)
        except NotAcknowledgeable:
            incident.refresh_from_db()
    return _page(request, incident, "")


def _who(channel_id: int | None) -> str:
    # Anyone holding the link may use it: what we know is where it was sent.
    from django.apps import apps

    channel = apps.get_model("notifications", "Channel").objects.filter(pk=channel_id).first()
    return f"link sent to {channel.name}" if channel else "link in an alert"


def _page(request, incident: Incident | None, problem: str, status: int = 200):
    return render(request, "loopr/acknowledge.html", {"incident": incident, "problem": problem}, status=status)
