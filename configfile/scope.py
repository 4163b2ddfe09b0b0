"""Which objects a loopr.yaml describes: decided here and only here, so that
plan, apply and export (API and command line alike) agree. A file describes
one team's objects; who may read or change them is the team's roles, as in
the rest of the API."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.db import connection, models

from teams.choices import Role
from teams.models import Team


class ScopeError(Exception):
    """The team asked for is not one of the caller's (a 400 naming `team`)."""


class ScopeForbidden(Exception):
    """The caller is a member of the team, below the role the verb needs (a 403)."""


@dataclass(frozen=True)
class Caller:
    """What the API's serializers read of a request (`user`, `auth`), for
    the command line, which has none."""

    user: models.Model
    auth: object = None
    method: str = "POST"

    def build_absolute_uri(self, path: str) -> str:
        return path


@dataclass(frozen=True)
class Scope:
    """One team's objects: a file creates them in that team (made by
    `user`), and only they are compared with it, pruned or exported."""

    team: Team
    user: models.Model
    # The request the API's serializers are given (a Caller on the command line).
    request: object = field(default=None, compare=False)

    def objects(self, model: type[models.Model]) -> models.QuerySet:
        return model.objects.in_team(self.team)

    def new_object_fields(self) -> dict:
        """What a serializer's save() is given for an object the file creates."""
        return {"owner": self.user, "team": self.team}

    def context(self, **extra) -> dict:
        """The serializers' context: the API's (`request`) and the file's (`scope`)."""
        return {"request": self.request or Caller(self.user), "scope": self, **extra}

    def lock(self) -> None:
        """Plans and applies of one scope run one at a time (until the
        transaction ends): each reads the state, writes, and reads it again."""
        if connection.vendor != "postgresql":
            return  # SQLite serialises writers by itself
        key = int.from_bytes(hashlib.blake2b(f"loopr-config:team:{self.team.pk}".encode(), digest_size=8).digest(),
                             "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def scope_for(user, team: object = None, role: str = Role.VIEWER, *, token_team: int | None = None,
              request=None) -> Scope:
    """The team whose objects `user` reads (plan, export: `role` viewer) or
    changes (apply: editor) through a file: `team` by id, left out: the
    team a team token is limited to, else the user's personal team.
    ScopeError when it is not one of theirs (or not the token's), as if it
    did not exist; ScopeForbidden when their role there is below `role`."""
    if team in (None, ""):
        chosen = Team.objects.filter(pk=token_team).first() if token_team is not None \
            else Team.objects.personal_for(user)
    else:
        chosen = _team_by_id(team, token_team)
        if chosen is None:
            raise ScopeError(f"No team with the id {team!r} among yours.")
    held = chosen.role_of(user) if chosen is not None else None
    if held is None:
        raise ScopeError(f"No team with the id {team!r} among yours." if team not in (None, "")
                         else "Your token's team is not one of yours any more.")
    if Role.rank(held) < Role.rank(role):
        raise ScopeForbidden(f"Your role in team {chosen.pk} ({held}) does not allow this; {role} or above does.")
    return Scope(team=chosen, user=user, request=request)


def _team_by_id(team: object, token_team: int | None) -> Team | None:
    if isinstance(team, bool) or not isinstance(team, (int, str)):
        return None
    try:
        pk = int(str(team).strip())
    except ValueError:
        return None
    if not 1 <= pk < 2**63 or (token_team is not None and pk != token_team):
        return None
    return Team.objects.filter(pk=pk).first()
