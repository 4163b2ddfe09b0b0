"""The page an invitation's link opens: sign in, then join the team."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from . import audit
from .models import Invitation


@require_http_methods(["GET", "POST"])
def accept_invitation(request, key: str):
    # Whoever signs in with the link joins, whatever their account's email:
    # the link is the secret, as a shared invite link is elsewhere. The page
    # names the address it was sent to, so a user can tell it was not theirs.
    invitation = Invitation.objects.by_key(key)
    if invitation is None:
        return _page(request, None, "This invitation link is not valid (or it was revoked).", status=404)
    if invitation.accepted_at is not None:
        return _page(request, invitation, "This invitation has already been used.", status=410)
    if invitation.is_expired():
        return _page(request, invitation, "This invitation has expired. Ask the team's admins for a new one.",
                     status=410)
    if not request.user.is_authenticated:
        # The API's login, not the admin's: the admin lets only staff in.
        return redirect_to_login(request.get_full_path(), reverse("rest_framework:login"))
    current = invitation.team.memberships.filter(user=request.user).first()
    if current is not None:
        return _page(request, invitation, f"You are already a member of {invitation.team}, as {current.role}.")
    if request.method == "POST":
        with transaction.atomic():
            membership = invitation.accept(request.user)
            if membership is None:
                return _page(request, invitation, "This invitation has already been used.", status=410)
            audit.record(request, "invite-accept", membership, {"role": [None, membership.role]})
        return _page(request, invitation, f"You joined {invitation.team} as {membership.role}.")
    return _page(request, invitation, "")


def _page(request, invitation: Invitation | None, outcome: str, status: int = 200):
    return render(request, "teams/invitation.html", {"invitation": invitation, "outcome": outcome}, status=status)
