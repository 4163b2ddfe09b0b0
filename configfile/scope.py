"""Which objects a loopr.yaml describes: decided here and only here, so that
plan, apply and export (API and command line alike) agree."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import connection, models


class ScopeError(Exception):
    """The scope asked for does not exist for this caller (a 400 naming `team`)."""


@dataclass(frozen=True)
class Scope:
    """One owner's objects: a file creates them for that owner, and only
    they are compared with it, pruned or exported."""

    owner: models.Model

    def objects(self, model: type[models.Model]) -> models.QuerySet:
        return model.objects.filter(owner=self.owner)

    def new_object_fields(self) -> dict:
        """What a serializer's save() is given for an object the file creates."""
        return {"owner": self.owner}

    @property
    def label(self) -> str:
        return f"user {self.owner.get_username()}"

    def lock(self) -> None:
        """Plans and applies of one scope run one at a time (until the
        transaction ends): each reads the state, writes, and reads it again."""
        if connection.vendor != "postgresql":
            return  # SQLite serialises writers by itself
        key = int.from_bytes(hashlib.blake2b(f"loopr-config:{self.owner.pk}".encode(), digest_size=8).digest(),
                             "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def scope_for(user, team: object = None) -> Scope:
    """The objects `user` manages through a file, given the file's (or the
    request's) `team`. Until Loopr has teams, a user's own objects are their
    personal scope and the only one: a team named is refused."""
    if team not in (None, ""):
        raise ScopeError(f"No team {team!r}: Loopr has no teams yet; leave `team` out for your own objects.")
    return Scope(owner=user)
