"""Inviting someone: the invitation, its audit entry and its email (the link
to accept it, through Django's mail backend, EMAIL_URL), all or nothing.
The API and the admin both invite through `invite`."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from . import audit
from .models import Invitation


class EmailNotSent(Exception):
    """The email could not be sent; nothing was saved."""


def invite(request, invitation: Invitation) -> None:
    """Saves the (new, checked) invitation from `request.user` and emails its
    link. The role rules are checked here (PermissionDenied); an email that
    cannot be sent leaves no invitation behind (EmailNotSent)."""
    invitation.team.check_grant(request.user, invitation.role, "invite")
    invitation.invited_by = request.user
    key = invitation.new_key()
    try:
        with transaction.atomic():
            invitation.save(force_insert=True)
            audit.invited(request, invitation)
            # Inside the transaction: an email that could not be sent leaves no invitation behind.
            send(invitation, link(request, key))
    except OSError as exc:  # smtplib's errors, refused connections and timeouts
        invitation.pk = None
        raise EmailNotSent() from exc


def link(request, key: str) -> str:
    """The absolute link: LOOPR_PUBLIC_URL when set, else the host the request reached."""
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
