"""An invitation's email: the link to accept it, sent through Django's mail backend (EMAIL_URL)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from .models import Invitation


def link(request, key: str) -> str:
    """The absolute link: LOOPR_PUBLIC_URL when set, else the host the API was reached at."""
    path = reverse("invitation", args=[key])
    return settings.LOOPR_PUBLIC_URL + path if settings.LOOPR_PUBLIC_URL else request.build_absolute_uri(path)


def send(invitation: Invitation, url: str) -> None:
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "Someone"
    send_mail(
        subject=f"Join {invitation.team} on Loopr",
        message=(f"{inviter} invites you to the team {invitation.team} on Loopr, as {invitation.role}.\n\n"
                 f"Open this link, sign in, and join:\n{url}\n\n"
                 f"It works once, until {invitation.expires_at:%Y-%m-%d %H:%M} UTC. "
                 f"If you did not expect it, ignore this email.\n"),
        from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=[invitation.email], fail_silently=False,
    )
