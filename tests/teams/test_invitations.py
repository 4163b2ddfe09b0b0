"""Invitations: an email with a link that makes whoever signs in with it a
member, once and until it expires; only admins and owners send them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from teams.choices import Role
from teams.models import AuditEntry, Invitation, Membership, hash_key
from tests.factories import TeamFactory, UserFactory, client_of, member

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://\S+/invitations/(inv_[-\w]+)/")


@pytest.fixture
def team():
    return TeamFactory(name="ops")


@pytest.fixture
def admin(team):
    user = UserFactory(username="team-admin")
    member(team, user, Role.ADMIN)
    return user


def invite(team, by, email="new@example.com", role="editor"):
    return client_of(by).post(f"/api/v1/teams/{team.pk}/invitations/", {"email": email, "role": role},
                              format="json")


def sent_key(mailoutbox) -> str:
    return LINK.search(mailoutbox[-1].body).group(1)


def test_an_invitation_emails_a_link_that_joins_the_signed_in_user_with_its_role(team, admin, mailoutbox):
    created = invite(team, admin)
    assert created.status_code == 201, created.content
    assert created.json()["email"] == "new@example.com" and created.json()["role"] == "editor"
    # One email, to the invitee, holding the link; only the key's hash is stored.
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["new@example.com"]
    key = sent_key(mailoutbox)
    assert Invitation.objects.get().key_hash == hash_key(key)
    assert "testserver/invitations/" in mailoutbox[0].body  # the request's host, LOOPR_PUBLIC_URL being unset

    # Anonymous: sent to sign in, and back.
    browser = Client()
    url = f"/invitations/{key}/"
    anonymous = browser.get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"/api/auth/login/?next=/invitations/{key}/"

    joiner = UserFactory(username="joiner", email="someone-else@example.com")
    browser.force_login(joiner)
    page = browser.get(url)
    assert page.status_code == 200 and "Join ops as editor" in page.content.decode()
    assert 'method="post"' in page.content.decode() and "<script" not in page.content.decode()
    joined = browser.post(url)
    assert joined.status_code == 200 and "You joined ops as editor" in joined.content.decode()
    assert Membership.objects.get(team=team, user=joiner).role == Role.EDITOR
    assert set(AuditEntry.objects.filter(team=team).values_list("action", flat=True)) == {"invite", "invite-accept"}

    # Once only: the link is spent, for anyone.
    other = Client()
    other.force_login(UserFactory(username="late"))
    again = other.post(url)
    assert again.status_code == 410 and "already been used" in again.content.decode()
    assert not Membership.objects.filter(team=team, user__username="late").exists()
    # And it is no longer pending.
    assert client_of(admin).get(f"/api/v1/teams/{team.pk}/invitations/").json()["results"] == []


def test_the_link_starts_with_loopr_public_url_when_it_is_set(team, admin, mailoutbox, settings):
    settings.LOOPR_PUBLIC_URL = "https://loopr.example.org"
    assert invite(team, admin).status_code == 201
    assert "https://loopr.example.org/invitations/inv_" in mailoutbox[0].body


def test_an_expired_invitation_is_gone(team, admin, mailoutbox, settings):
    settings.LOOPR_INVITATION_MAX_AGE = 3600
    assert invite(team, admin).status_code == 201
    invitation = Invitation.objects.get()
    assert timedelta(minutes=59) < invitation.expires_at - timezone.now() <= timedelta(hours=1)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    browser = Client()
    browser.force_login(UserFactory(username="joiner"))
    for method in (browser.get, browser.post):
        response = method(f"/invitations/{sent_key(mailoutbox)}/")
        assert response.status_code == 410 and "expired" in response.content.decode()
    assert not team.memberships.filter(user__username="joiner").exists()
    assert client_of(admin).get(f"/api/v1/teams/{team.pk}/invitations/").json()["results"] == []


def test_an_unknown_key_is_a_404(db):
    assert Client().get("/invitations/inv_nothing/").status_code == 404


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_viewers_and_editors_may_not_invite_or_see_invitations(team, role, mailoutbox):
    user = UserFactory(username=f"{role}-user")
    member(team, user, role)
    assert invite(team, user).status_code == 403
    assert client_of(user).get(f"/api/v1/teams/{team.pk}/invitations/").status_code == 403
    assert mailoutbox == [] and not Invitation.objects.exists()


def test_a_non_member_does_not_find_the_team(team, mailoutbox):
    assert invite(team, UserFactory(username="stranger")).status_code == 404


def test_only_owners_invite_owners(team, admin, mailoutbox):
    refused = invite(team, admin, role="owner")
    assert refused.status_code == 403 and not Invitation.objects.exists()
    owner = UserFactory(username="the-owner")
    member(team, owner, Role.OWNER)
    assert invite(team, owner, role="owner").status_code == 201


def test_bad_input_is_a_400_naming_the_field(team, admin, mailoutbox):
    existing = UserFactory(username="existing", email="member@example.com")
    member(team, existing, Role.VIEWER)
    assert invite(team, admin, email="pending@example.com").status_code == 201
    for body, field in [({"email": "not-an-email", "role": "viewer"}, "email"),
                        ({"email": "x@example.com", "role": "emperor"}, "role"),
                        ({"role": "viewer"}, "email"),
                        ({"email": "MEMBER@example.com", "role": "viewer"}, "email"),
                        ({"email": "pending@example.com", "role": "viewer"}, "email")]:
        response = client_of(admin).post(f"/api/v1/teams/{team.pk}/invitations/", body, format="json")
        assert response.status_code == 400 and field in response.json(), (body, response.content)
    assert len(mailoutbox) == 1


def test_revoking_an_invitation_kills_its_link(team, admin, mailoutbox):
    assert invite(team, admin).status_code == 201
    listed = client_of(admin).get(f"/api/v1/teams/{team.pk}/invitations/").json()["results"]
    assert [i["email"] for i in listed] == ["new@example.com"]
    revoked = client_of(admin).delete(f"/api/v1/teams/{team.pk}/invitations/{listed[0]['id']}/")
    assert revoked.status_code == 204
    assert AuditEntry.objects.filter(team=team, action="invite-revoke").exists()
    browser = Client()
    browser.force_login(UserFactory(username="joiner"))
    assert browser.post(f"/invitations/{sent_key(mailoutbox)}/").status_code == 404


def test_an_existing_member_keeps_their_role_and_the_invitation_stays_unused(team, admin, mailoutbox):
    assert invite(team, admin, role="admin").status_code == 201
    viewer = UserFactory(username="viewer-user", email="other@example.com")
    member(team, viewer, Role.VIEWER)
    browser = Client()
    browser.force_login(viewer)
    response = browser.post(f"/invitations/{sent_key(mailoutbox)}/")
    assert response.status_code == 200 and "already a member" in response.content.decode()
    assert Membership.objects.get(team=team, user=viewer).role == Role.VIEWER
    assert Invitation.objects.get().accepted_at is None


def test_a_failed_email_leaves_no_invitation(team, admin, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # discard: refused
    response = invite(team, admin)
    assert response.status_code == 503
    assert not Invitation.objects.exists() and not AuditEntry.objects.filter(action="invite").exists()


def test_sending_invitations_is_throttled(team, admin, mailoutbox, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "invitation-create": "2/hour"}}
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    # DRF reads the rates once, at import.
    ScopedRateThrottle.THROTTLE_RATES = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    try:
        answers = [invite(team, admin, email=f"n{i}@example.com").status_code for i in range(3)]
    finally:
        ScopedRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    assert answers == [201, 201, 429] and len(mailoutbox) == 2
    # Reading the list is not throttled.
    assert client_of(admin).get(f"/api/v1/teams/{team.pk}/invitations/").status_code == 200
