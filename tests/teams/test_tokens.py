"""Scoped API tokens: shown once, stored hashed, limited to a team and to
reading when asked, expiring and revocable."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from teams.choices import Role
from teams.models import ApiToken, Team
from tests.factories import MonitorFactory, TeamFactory, UserFactory, member

pytestmark = pytest.mark.django_db

TOKENS = "/api/v1/tokens/"
MONITORS = "/api/v1/monitors/"


def with_key(key: str, scheme: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client


def test_a_new_token_shows_its_key_once_and_stores_only_its_hash(user, api):
    created = api.post(TOKENS, {"name": "ci"}, format="json")
    assert created.status_code == 201
    key = created.json()["key"]
    token = ApiToken.objects.get(pk=created.json()["id"])
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest() and key not in str(token.__dict__)
    assert key.startswith(created.json()["prefix"]) and len(key) > 40
    # Listed by name and prefix, never with its key.
    listed = api.get(TOKENS).json()["results"]
    assert {"ci"} <= {t["name"] for t in listed} and all("key" not in t for t in listed)
    # It works, with either scheme, and records its use.
    for scheme in ("Token", "Bearer"):
        assert with_key(key, scheme).get(MONITORS).status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None


def test_a_read_token_reads_and_every_write_is_a_403(user, api):
    monitor = MonitorFactory(owner=user)
    key = api.post(TOKENS, {"name": "grafana", "scope": "read"}, format="json").json()["key"]
    reader = with_key(key)
    assert reader.get(f"{MONITORS}{monitor.pk}/").status_code == 200
    assert reader.patch(f"{MONITORS}{monitor.pk}/", {"name": "x"}, format="json").status_code == 403
    assert reader.post(MONITORS, {"name": "m", "url": "http://127.0.0.1:9/"}, format="json").status_code == 403
    assert reader.delete(f"{MONITORS}{monitor.pk}/").status_code == 403
    assert reader.post(TOKENS, {"name": "more"}, format="json").status_code == 403


def test_a_team_token_sees_only_its_team(user, api):
    team = TeamFactory(name="ops")
    member(team, user, Role.ADMIN)
    theirs, mine = MonitorFactory(owner=user, team=team), MonitorFactory(owner=user)
    key = api.post(TOKENS, {"name": "ops-ci", "team": team.pk}, format="json").json()["key"]
    scoped = with_key(key)
    assert [m["id"] for m in scoped.get(MONITORS).json()["results"]] == [theirs.pk]
    assert scoped.get(f"{MONITORS}{mine.pk}/").status_code == 404
    # What it creates goes to its team, and it cannot reach other teams.
    created = scoped.post(MONITORS, {"name": "m", "url": "http://127.0.0.1:9/"}, format="json")
    assert created.status_code == 201 and created.json()["team"] == team.pk
    personal = Team.objects.personal_for(user)
    refused = scoped.post(MONITORS, {"name": "m", "url": "http://127.0.0.1:9/", "team": personal.pk}, format="json")
    assert refused.status_code == 400 and "team" in refused.json()
    assert [t["id"] for t in scoped.get("/api/v1/teams/").json()["results"]] == [team.pk]


def test_only_a_teams_admins_make_its_tokens(user, api):
    team = TeamFactory(name="ops")
    member(team, user, Role.EDITOR)
    refused = api.post(TOKENS, {"name": "x", "team": team.pk}, format="json")
    assert refused.status_code == 403 and "team" in refused.json()
    stranger_team = TeamFactory(name="elsewhere")
    refused = api.post(TOKENS, {"name": "x", "team": stranger_team.pk}, format="json")
    assert refused.status_code == 400 and "team" in refused.json()


@pytest.mark.parametrize(("payload", "field"), [
    ({"name": "x", "scope": "admin"}, "scope"),
    ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"scope": "read"}, "name"),
])
def test_bad_tokens_are_a_400_naming_the_field(api, payload, field):
    refused = api.post(TOKENS, payload, format="json")
    assert refused.status_code == 400 and field in refused.json()


def test_an_expired_or_revoked_or_unknown_key_is_a_401(user, api):
    token, key = ApiToken.objects.issue(user, "short", expires_at=timezone.now() + timedelta(hours=1))
    assert with_key(key).get(MONITORS).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert with_key(key).get(MONITORS).status_code == 401
    _, key = ApiToken.objects.issue(user, "revoked")
    revoke = api.delete(f"{TOKENS}{ApiToken.objects.get(name='revoked').pk}/")
    assert revoke.status_code == 204 and with_key(key).get(MONITORS).status_code == 401
    assert with_key("lpr_nonsense").get(MONITORS).status_code == 401


def test_nobody_sees_or_revokes_another_users_personal_token(user, api):
    theirs, _ = ApiToken.objects.issue(UserFactory(username="bob"), "bobs")
    assert api.get(f"{TOKENS}{theirs.pk}/").status_code == 404
    assert api.delete(f"{TOKENS}{theirs.pk}/").status_code == 404


def test_making_tokens_is_throttled(api, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token-create": "3/hour"}}
    from rest_framework.throttling import ScopedRateThrottle

    ScopedRateThrottle.THROTTLE_RATES = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    try:
        answers = [api.post(TOKENS, {"name": f"t{n}"}, format="json").status_code for n in range(4)]
    finally:
        from rest_framework.settings import api_settings

        ScopedRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    assert answers == [201, 201, 201, 429]
