"""Per-user visibility, in one place for every owned model (API, admin)."""

from __future__ import annotations

from django.db import models


class OwnedQuerySet(models.QuerySet):
    """`owned_by(user)`: what a user may see — everything for a superuser,
    otherwise the rows whose `owner_path` leads to them. Another user's
    object is then simply not there (a 404)."""

    owner_path = "owner"

    def owned_by(self, user) -> OwnedQuerySet:
        return self if user.is_superuser else self.filter(**{self.owner_path: user})
