"""Teams and their members through the API: roles decide who may do what,
and a team always keeps an owner."""

from __future__ import annotations

import pytest

from teams.choices import Role
from teams.models import Membership, Team
from tests.factories import TeamFactory, UserFactory, client_of, member

pytestmark = pytest.mark.django_db

TEAMS = "/api/v1/teams/"


@pytest.fixture
def team():
    return TeamFactory(name="ops")


def with_role(team, role, name=None):
    user = UserFactory(username=name or f"{role}-user")
    member(team, user, role)
    return user


def test_creating_a_team_makes_the_caller_its_owner_and_lists_it_with_their_role(user, api):
    created = api.post(TEAMS, {"name": "sre"}, format="json")
    assert created.status_code == 201 and created.json()["role"] == "owner"
    listed = {t["name"]: t["role"] for t in api.get(TEAMS).json()["results"]}
    assert listed == {"alice": "owner", "sre": "owner"}


def test_a_non_member_does_not_find_the_team(team):
    stranger = client_of(UserFactory(username="stranger"))
    assert stranger.get(f"{TEAMS}{team.pk}/").status_code == 404
    assert stranger.get(f"{TEAMS}{team.pk}/members/").status_code == 404


def test_only_an_owner_renames_or_deletes_a_team(team):
    owner, admin = with_role(team, Role.OWNER), with_role(team, Role.ADMIN)
    assert client_of(admin).patch(f"{TEAMS}{team.pk}/", {"name": "x"}, format="json").status_code == 403
    assert client_of(admin).delete(f"{TEAMS}{team.pk}/").status_code == 403
    assert client_of(owner).patch(f"{TEAMS}{team.pk}/", {"name": "x"}, format="json").json()["name"] == "x"
    assert client_of(owner).delete(f"{TEAMS}{team.pk}/").status_code == 204
    assert not Team.objects.filter(pk=team.pk).exists()


def test_a_personal_team_cannot_be_deleted(user, api):
    personal = Team.objects.personal_for(user)
    assert api.delete(f"{TEAMS}{personal.pk}/").status_code == 400


def test_an_admin_adds_members_by_username_or_email_but_not_owners(team):
    admin = client_of(with_role(team, Role.ADMIN))
    bob = UserFactory(username="bob", email="bob@example.com")
    added = admin.post(f"{TEAMS}{team.pk}/members/", {"username": "bob", "role": "editor"}, format="json")
    assert added.status_code == 201 and added.json()["username"] == "bob" and added.json()["role"] == "editor"
    UserFactory(username="carol", email="Carol@Example.com")
    by_email = admin.post(f"{TEAMS}{team.pk}/members/", {"email": "carol@example.com", "role": "viewer"}, format="json")
    assert by_email.status_code == 201 and by_email.json()["username"] == "carol"
    UserFactory(username="dave")
    assert admin.post(f"{TEAMS}{team.pk}/members/", {"username": "dave", "role": "owner"},
                      format="json").status_code == 403
    assert Membership.objects.get(team=team, user=bob).role == Role.EDITOR


@pytest.mark.parametrize(("payload", "field"), [
    ({"username": "nobody", "role": "viewer"}, "username"),
    ({"email": "nobody@example.com", "role": "viewer"}, "email"),
    ({"username": "bob", "role": "superhero"}, "role"),
    ({"role": "viewer"}, "username"),
    ({"username": "owner-user", "role": "viewer"}, "username"),  # a member already
])
def test_bad_members_are_a_400_naming_the_field(team, payload, field):
    owner = client_of(with_role(team, Role.OWNER))
    UserFactory(username="bob")
    refused = owner.post(f"{TEAMS}{team.pk}/members/", payload, format="json")
    assert refused.status_code == 400 and field in refused.json(), refused.json()


def test_editors_and_viewers_cannot_manage_members(team):
    for role in (Role.VIEWER, Role.EDITOR):
        client = client_of(with_role(team, role))
        UserFactory(username="bob")
        assert client.post(f"{TEAMS}{team.pk}/members/", {"username": "bob", "role": "viewer"},
                           format="json").status_code == 403


def test_the_last_owner_can_be_neither_demoted_nor_removed(team):
    owner = with_role(team, Role.OWNER)
    mine = Membership.objects.get(team=team, user=owner)
    client = client_of(owner)
    url = f"{TEAMS}{team.pk}/members/{mine.pk}/"
    assert client.patch(url, {"role": "admin"}, format="json").status_code == 400
    assert client.delete(url).status_code == 400
    # With a second owner, the first may step down.
    other = with_role(team, Role.OWNER, "second")
    assert client.patch(url, {"role": "admin"}, format="json").status_code == 200
    assert Membership.objects.get(pk=mine.pk).role == Role.ADMIN
    assert team.owner_count() == 1 and Membership.objects.get(team=team, user=other).role == Role.OWNER


def test_an_admin_cannot_touch_an_owner_or_promote_anyone_to_owner(team):
    owner = with_role(team, Role.OWNER)
    admin = client_of(with_role(team, Role.ADMIN))
    editor = with_role(team, Role.EDITOR)
    owners = Membership.objects.get(team=team, user=owner)
    editors = Membership.objects.get(team=team, user=editor)
    assert admin.patch(f"{TEAMS}{team.pk}/members/{owners.pk}/", {"role": "viewer"}, format="json").status_code == 403
    assert admin.delete(f"{TEAMS}{team.pk}/members/{owners.pk}/").status_code == 403
    assert admin.patch(f"{TEAMS}{team.pk}/members/{editors.pk}/", {"role": "owner"}, format="json").status_code == 403
    assert admin.patch(f"{TEAMS}{team.pk}/members/{editors.pk}/", {"role": "viewer"}, format="json").status_code == 200


def test_any_member_may_leave(team):
    viewer = with_role(team, Role.VIEWER)
    mine = Membership.objects.get(team=team, user=viewer)
    assert client_of(viewer).delete(f"{TEAMS}{team.pk}/members/{mine.pk}/").status_code == 204
    assert client_of(viewer).get(f"{TEAMS}{team.pk}/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_two_owners_stepping_down_at_the_same_moment_leave_the_team_one_owner(team):
    import threading

    import psycopg
    from django.db import connection

    first, second = with_role(team, Role.OWNER, "first"), with_role(team, Role.OWNER, "second")
    firsts = Membership.objects.get(team=team, user=first)
    seconds = Membership.objects.get(team=team, user=second)
    # The second owner's demotion, as another request would make it: the
    # team locked, the change made, not yet committed.
    params = connection.get_connection_params()
    other = psycopg.connect(**{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port", "password")})
    other.execute(f"SELECT 1 FROM {Team._meta.db_table} WHERE id = %s FOR UPDATE", [team.pk])
    other.execute(f"UPDATE {Membership._meta.db_table} SET role = 'admin' WHERE id = %s", [seconds.pk])
    answers = []

    def step_down() -> None:
        try:
            answers.append(client_of(first).patch(f"{TEAMS}{team.pk}/members/{firsts.pk}/", {"role": "admin"},
                                                  format="json").status_code)
        finally:
            connection.close()

    request = threading.Thread(target=step_down)
    request.start()
    request.join(1.0)
    assert request.is_alive(), "the first owner's demotion did not wait for the other one's"
    other.commit()
    other.close()
    request.join(10)
    assert answers == [400]
    assert list(Membership.objects.filter(team=team, role=Role.OWNER).values_list("user__username", flat=True)) \
        == ["first"]
