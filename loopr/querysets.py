"""Team visibility, in one place for every team-owned model (API, admin, filters)."""

from __future__ import annotations

from django.db import models


class TeamScopedQuerySet(models.QuerySet):
    """`visible_to(user, team=None)`: what a user may see — the rows of the
    teams they are a member of (everything for a superuser), and of `team`
    alone when given (a team token). Anything else is simply not there: a 404.

    Models say how their rows reach a team with `team_path` ("team", or
    "monitor__team" for what belongs to a monitor). Written with the
    relation's name only, so the project's plumbing imports no app."""

    team_path = "team"

    def visible_to(self, user, team=None) -> TeamScopedQuerySet:
        queryset = self
        if not user.is_superuser:
            # One row per object: a user is a member of a team at most once.
            queryset = queryset.filter(**{f"{self.team_path}__memberships__user": user})
        if team is not None:
            queryset = queryset.filter(**{self.team_path: team})
        return queryset

    def in_team(self, team) -> TeamScopedQuerySet:
        return self.filter(**{self.team_path: team})

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for obj in objs:
            fill = getattr(obj, "fill_team", None)
            if fill is not None:
                fill()
        return super().bulk_create(objs, *args, **kwargs)

    # The names from before teams, for code written against them: a user's
    # "own" objects are now those of their teams.
    owned_by = visible_to


OwnedQuerySet = TeamScopedQuerySet


def team_id_of(obj: models.Model) -> int | None:
    """The id of the team `obj` belongs to, by its model's `team_path`
    (a monitor's result: its monitor's team)."""
    path = type(obj)._default_manager.all().team_path.split("__")
    for name in path[:-1]:
        obj = getattr(obj, name)
    return getattr(obj, f"{path[-1]}_id")
