"""Teams, members, invitations and tokens in the admin, under the API's
rules: any staff user makes a team and owns it; admins manage members who
are not owners, owners also owners; a team keeps an owner; viewers and
editors read; invitations and tokens as through the API, audited alike."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from monitors.models import CheckResult

from teams.choices import Role
from teams.models import ApiToken, AuditEntry, Invitation, Membership, Team
from tests.factories import MonitorFactory, RegionFactory, TeamFactory, UserFactory, member

pytestmark = pytest.mark.django_db

TEAMS = "/admin/teams/team/"
INVITATIONS = "/admin/teams/invitation/"
TOKENS = "/admin/teams/apitoken/"


def staff_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff(name: str):
    # No Django permissions granted: a team's rules are its roles, as in the API.
    return UserFactory(username=name, is_staff=True)


@pytest.fixture
def team():
    return TeamFactory(name="ops")


def with_role(team, role: str, name: str | None = None):
    user = staff(name or f"{role}-user")
    member(team, user, role)
    return user


def post_team(client, team, roles: dict | None = None, added=(), name: str | None = None):
    """The team's change form as posted: `roles` changes members' roles by
    username (None removes them); `added` holds (username or email, role)."""
    roles = roles or {}
    rows = list(team.memberships.select_related("user"))
    data = {"name": name or team.name, "memberships-TOTAL_FORMS": len(rows) + len(added),
            "memberships-INITIAL_FORMS": len(rows), "memberships-MIN_NUM_FORMS": 0,
            "memberships-MAX_NUM_FORMS": 1000}
    for index, membership in enumerate(rows):
        role = roles.get(membership.user.username, membership.role)
        data.update({f"memberships-{index}-id": membership.pk, f"memberships-{index}-team": team.pk,
                     f"memberships-{index}-role": role or membership.role})
        if role is None:
            data[f"memberships-{index}-DELETE"] = "on"
    for index, (who, role) in enumerate(added, start=len(rows)):
        data.update({f"memberships-{index}-team": team.pk, f"memberships-{index}-who": who,
                     f"memberships-{index}-role": role})
    return client.post(f"{TEAMS}{team.pk}/change/", data)


def roles_of(team) -> dict[str, str]:
    return dict(team.memberships.values_list("user__username", "role"))


def logged(**filters) -> list[tuple[str, dict]]:
    return list(AuditEntry.objects.filter(**filters).order_by("id").values_list("action", "changes"))


def test_any_staff_user_creates_a_team_in_the_admin_and_owns_it():
    carol = staff("carol")
    response = staff_client(carol).post(f"{TEAMS}add/", {"name": "sre"})
    assert response.status_code == 302
    team = Team.objects.get(name="sre")
    assert roles_of(team) == {"carol": "owner"} and not team.is_personal
    assert logged(team=team) == [("create", {})]
    # Listed with their role, next to their personal team; no one else's.
    TeamFactory(name="someone-elses")
    listing = staff_client(carol).get(TEAMS).content.decode()
    assert "sre" in listing and "someone-elses" not in listing


def test_a_team_admin_adds_changes_and_removes_members_who_are_not_owners(team):
    admin = with_role(team, Role.ADMIN)
    with_role(team, Role.OWNER)
    UserFactory(username="bob")
    UserFactory(username="carol", email="Carol@Example.com")
    client = staff_client(admin)
    # By username and by email, as the API adds them.
    assert post_team(client, team, added=[("bob", "viewer"), ("carol@example.com", "editor")]).status_code == 302
    assert roles_of(team) == {"admin-user": "admin", "owner-user": "owner", "bob": "viewer", "carol": "editor"}
    assert post_team(client, team, roles={"bob": "editor", "carol": None}).status_code == 302
    assert roles_of(team) == {"admin-user": "admin", "owner-user": "owner", "bob": "editor"}
    # The API's entries, with the admin as actor.
    assert [(action, changes) for action, changes in logged(team=team)] == [
        ("member-add", {"role": [None, "viewer"]}), ("member-add", {"role": [None, "editor"]}),
        ("member-remove", {"role": ["editor", None]}), ("member-change", {"role": ["viewer", "editor"]})]
    assert set(AuditEntry.objects.values_list("actor_name", flat=True)) == {"admin-user"}


def test_a_team_admin_can_neither_make_nor_change_nor_remove_owners(team):
    admin = with_role(team, Role.ADMIN)
    with_role(team, Role.OWNER)
    UserFactory(username="bob")
    client = staff_client(admin)
    before = roles_of(team)
    for attempt in ({"added": [("bob", "owner")]}, {"roles": {"admin-user": "owner"}},
                    {"roles": {"owner-user": "viewer"}}, {"roles": {"owner-user": None}}):
        response = post_team(client, team, **attempt)
        # The page again, saying why; nothing changed, nothing logged.
        assert response.status_code == 200 and "Only a team&#x27;s owners or above may" in response.content.decode()
    assert roles_of(team) == before and not AuditEntry.objects.exists()


def test_an_owner_manages_owners_but_the_last_owner_stays(team):
    owner = with_role(team, Role.OWNER)
    UserFactory(username="bob")
    client = staff_client(owner)
    for last in ({"owner-user": "admin"}, {"owner-user": None}):
        response = post_team(client, team, roles=last)
        assert response.status_code == 200 and "The team&#x27;s last owner cannot" in response.content.decode()
    assert roles_of(team) == {"owner-user": "owner"}
    # Another owner first, in the same save: then the old one may step down.
    assert post_team(client, team, roles={"owner-user": "admin"}, added=[("bob", "owner")]).status_code == 302
    assert roles_of(team) == {"owner-user": "admin", "bob": "owner"}


def test_adding_an_unknown_user_or_a_member_twice_is_refused_naming_who(team):
    owner = with_role(team, Role.OWNER)
    client = staff_client(owner)
    unknown = post_team(client, team, added=[("nobody", "viewer")]).content.decode()
    assert "No user with this username; invite them instead." in unknown
    twice = post_team(client, team, added=[("owner-user", "viewer")]).content.decode()
    assert "Already a member of this team." in twice
    assert roles_of(team) == {"owner-user": "owner"}


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_viewers_and_editors_see_their_team_read_only(team, role):
    user = with_role(team, role)
    with_role(team, Role.OWNER)
    client = staff_client(user)
    page = client.get(f"{TEAMS}{team.pk}/change/").content.decode()
    assert "owner-user" in page and 'name="name"' not in page and 'name="memberships-0-role"' not in page
    assert post_team(client, team, roles={"owner-user": None}, name="renamed").status_code == 403
    assert roles_of(team) == {f"{role}-user": role, "owner-user": "owner"}
    assert Team.objects.get(pk=team.pk).name == "ops"


def test_only_an_owner_renames_or_deletes_a_team(team):
    admin, owner = with_role(team, Role.ADMIN), with_role(team, Role.OWNER)
    # An admin: the name is not theirs to change, nor the team to delete.
    assert 'name="name"' not in staff_client(admin).get(f"{TEAMS}{team.pk}/change/").content.decode()
    post_team(staff_client(admin), team, name="renamed")
    assert Team.objects.get(pk=team.pk).name == "ops"
    assert staff_client(admin).post(f"{TEAMS}{team.pk}/delete/", {"post": "yes"}).status_code == 403
    # The owner does both, and both are logged.
    assert post_team(staff_client(owner), team, name="renamed").status_code == 302
    assert staff_client(owner).post(f"{TEAMS}{team.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Team.objects.filter(pk=team.pk).exists()
    assert list(AuditEntry.objects.order_by("id").values_list("action", "changes")) == [
        ("update", {"name": ["ops", "renamed"]}), ("delete", {})]


def test_a_personal_team_cannot_be_deleted_in_the_admin():
    carol = staff("carol")
    personal = Team.objects.personal_for(carol)
    client = staff_client(carol)
    assert "deletelink" not in client.get(f"{TEAMS}{personal.pk}/change/").content.decode()
    assert client.post(f"{TEAMS}{personal.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Team.objects.filter(pk=personal.pk).exists()


def test_a_non_member_does_not_find_the_team_in_the_admin(team):
    with_role(team, Role.OWNER)
    stranger = staff_client(staff("stranger"))
    response = stranger.get(f"{TEAMS}{team.pk}/change/")
    # The admin's "not found" (a redirect to the index with a message), as for an id that does not exist.
    assert response.status_code == 302 and "ops" not in stranger.get(TEAMS).content.decode()


# Invitations


@pytest.fixture
def rate(settings):
    """Sets one of DRF's scoped rates for the test (DRF reads them once, at import)."""
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    def set_rate(scope: str, value: str) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], scope: value}}
        ScopedRateThrottle.THROTTLE_RATES = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]

    yield set_rate
    ScopedRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES


def invite(client, team, email="new@example.com", role="editor"):
    return client.post(f"{INVITATIONS}add/", {"team": team.pk, "email": email, "role": role})


def test_a_team_admin_invites_from_the_admin_with_the_apis_email_and_log(team, mailoutbox):
    admin = with_role(team, Role.ADMIN)
    client = staff_client(admin)
    assert invite(client, team).status_code == 302
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role, invitation.invited_by) == ("new@example.com", "editor", admin)
    # The API's email: a link that works; only the key's hash is stored.
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["new@example.com"]
    key = re.search(r"/invitations/(inv_[-\w]+)/", mailoutbox[0].body).group(1)
    joiner = UserFactory(username="joiner")
    joined = staff_client(joiner).post(f"/invitations/{key}/")
    assert joined.status_code == 200 and roles_of(team)["joiner"] == "editor"
    assert [a for a, _ in logged(team=team)] == ["invite", "invite-accept"]
    # Listed as pending, with the other pending ones of the teams they administer only.
    Invitation.objects.issue(TeamFactory(name="elsewhere"), "other@example.com", Role.VIEWER, None)
    Invitation.objects.issue(team, "waiting@example.com", Role.VIEWER, admin)
    listed = [i.email for i in client.get(INVITATIONS).context["cl"].result_list]
    assert listed == ["waiting@example.com"]  # the one to new@ was used


def test_the_admin_refuses_an_invitation_the_api_refuses(team, mailoutbox):
    admin = with_role(team, Role.ADMIN)
    client = staff_client(admin)
    assert "Only a team&#x27;s owners or above may invite owners" in invite(client, team, role="owner").content.decode()
    member(team, UserFactory(username="bob", email="bob@example.com"), Role.VIEWER)
    assert "Already a member of this team." in invite(client, team, email="BOB@example.com").content.decode()
    invite(client, team, email="new@example.com")
    assert "Already invited" in invite(client, team, email="new@example.com").content.decode()
    assert Invitation.objects.count() == 1 and len(mailoutbox) == 1
    # A viewer is offered only the teams they administer (their personal one), and sees none of these.
    viewer = with_role(team, Role.VIEWER)
    offered = staff_client(viewer).get(f"{INVITATIONS}add/").context["adminform"].form.fields["team"].queryset
    assert list(offered) == [Team.objects.personal_for(viewer)]
    assert staff_client(viewer).get(INVITATIONS).context["cl"].result_count == 0
    assert invite(staff_client(viewer), team).status_code == 200 and Invitation.objects.count() == 1


def test_invitations_from_the_admin_and_the_api_share_one_rate(team, mailoutbox, rate):
    rate("invitation-create", "2/hour")
    admin = with_role(team, Role.ADMIN)
    api = APIClient()
    api.force_authenticate(admin)
    assert api.post(f"/api/v1/teams/{team.pk}/invitations/", {"email": "a@example.com", "role": "viewer"},
                    format="json").status_code == 201
    assert invite(staff_client(admin), team, email="b@example.com").status_code == 302
    refused = invite(staff_client(admin), team, email="c@example.com")
    assert refused.status_code == 200 and "You sent too many invitations" in refused.content.decode()
    assert len(mailoutbox) == 2 and not Invitation.objects.filter(email="c@example.com").exists()


def test_an_invitation_whose_email_cannot_be_sent_is_not_kept(team, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # discard: refused
    response = invite(staff_client(with_role(team, Role.ADMIN)), team)
    assert response.status_code == 302 and response["Location"].endswith(f"{INVITATIONS}add/")
    assert not Invitation.objects.exists() and not AuditEntry.objects.exists()


def test_revoking_an_invitation_in_the_admin_logs_it_and_its_link_stops_working(team):
    admin = with_role(team, Role.ADMIN)
    invitation, key = Invitation.objects.issue(team, "new@example.com", Role.VIEWER, admin)
    owners, _ = Invitation.objects.issue(team, "boss@example.com", Role.OWNER, admin)
    client = staff_client(admin)
    # An owner's invitation is for owners to revoke.
    assert client.post(f"{INVITATIONS}{owners.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"{INVITATIONS}{invitation.pk}/delete/", {"post": "yes"}).status_code == 302
    assert list(Invitation.objects.all()) == [owners]
    assert logged(team=team) == [("invite-revoke", {"email": ["new@example.com", None]})]
    assert staff_client(UserFactory(username="late")).get(f"/invitations/{key}/").status_code == 404


# Tokens


def test_a_staff_user_makes_a_token_in_the_admin_and_sees_its_key_once():
    carol = staff("carol")
    client = staff_client(carol)
    response = client.post(f"{TOKENS}add/", {"name": "ci", "team": "", "scope": "read"}, follow=True)
    key = re.search(r"(lpr_[-\w]+)", response.content.decode()).group(1)
    token = ApiToken.objects.get(name="ci")
    assert (token.user, token.team, token.scope) == (carol, None, "read")
    # The key works (as a read token), is shown nowhere again, and the making is logged.
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/monitors/").status_code == 200
    assert api.post("/api/v1/monitors/", {"name": "x", "url": "http://127.0.0.1:9/"}, format="json").status_code == 403
    assert key not in client.get(TOKENS).content.decode() + client.get(f"{TOKENS}{token.pk}/change/").content.decode()
    assert logged(action="token-create") == [("token-create", {"scope": [None, "read"]})]
    assert AuditEntry.objects.get().team == Team.objects.personal_for(carol)


def test_a_team_token_is_made_only_for_a_team_the_user_administers(team):
    editor = with_role(team, Role.EDITOR)
    refused = staff_client(editor).post(f"{TOKENS}add/", {"name": "ci", "team": team.pk, "scope": "write"})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    admin = with_role(team, Role.ADMIN)
    assert staff_client(admin).post(f"{TOKENS}add/", {"name": "ci", "team": team.pk, "scope": "write"}).status_code == 302
    assert ApiToken.objects.get().team == team
    # Its admins see it (and may revoke it); its editor does not.
    assert "ci" in staff_client(admin).get(TOKENS).content.decode()
    assert ">ci<" not in staff_client(editor).get(TOKENS).content.decode()


def test_a_token_that_would_already_have_expired_is_refused():
    response = staff_client(staff("carol")).post(f"{TOKENS}add/", {
        "name": "ci", "scope": "write", "expires_at_0": "2001-01-01", "expires_at_1": "00:00"})
    assert response.status_code == 200 and "Must be in the future." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_a_token_in_the_admin_logs_it_and_its_key_stops_working():
    carol = staff("carol")
    token, key = ApiToken.objects.issue(carol, "ci")
    assert staff_client(carol).post(f"{TOKENS}{token.pk}/delete/", {"post": "yes"}).status_code == 302
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/monitors/").status_code == 401
    assert logged(action="token-revoke") == [("token-revoke", {})]
    # Another user's token is not there to revoke.
    theirs, _ = ApiToken.objects.issue(UserFactory(username="bob"), "bobs")
    assert staff_client(carol).post(f"{TOKENS}{theirs.pk}/delete/", {"post": "yes"}).status_code == 302
    assert ApiToken.objects.filter(pk=theirs.pk).exists()


def test_tokens_from_the_admin_and_the_api_share_one_rate(rate):
    rate("token-create", "2/hour")
    carol = staff("carol")
    api = APIClient()
    api.force_authenticate(carol)
    assert api.post("/api/v1/tokens/", {"name": "one"}, format="json").status_code == 201
    assert staff_client(carol).post(f"{TOKENS}add/", {"name": "two", "scope": "write"}).status_code == 302
    refused = staff_client(carol).post(f"{TOKENS}add/", {"name": "three", "scope": "write"})
    assert refused.status_code == 200 and "You made too many tokens" in refused.content.decode()
    assert api.post("/api/v1/tokens/", {"name": "four"}, format="json").status_code == 429
    assert sorted(ApiToken.objects.values_list("name", flat=True)) == ["one", "two"]
    assert Membership.objects.filter(user=carol).count() == 1  # nothing else came of it


def test_deleting_a_team_in_the_admin_counts_what_goes_with_it(team):
    owner = with_role(team, Role.OWNER)
    owner.is_superuser = True  # the monitors' own delete permission is Django's
    owner.save()
    monitor = MonitorFactory(team=team, owner=owner, name="shop")
    region = RegionFactory()
    now = timezone.now()
    CheckResult.objects.bulk_create([CheckResult(monitor=monitor, region=region, scheduled_at=now - timedelta(minutes=n),
                                                 checked_at=now, ok=True) for n in range(5)])
    page = staff_client(owner).get(f"{TEAMS}{team.pk}/delete/").content.decode()
    # What goes with it: its monitor named, its results counted (never listed one by one).
    assert "shop" in page and "Check results: 5" in page
