from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    """What a member may do in a team; each role may do all the ones before it."""

    VIEWER = "viewer", "viewer"  # reads everything of the team
    EDITOR = "editor", "editor"  # creates, changes and deletes the team's objects
    ADMIN = "admin", "admin"  # manages members (not owners) and the team's tokens
    OWNER = "owner", "owner"  # renames or deletes the team, manages owners

    @classmethod
    def rank(cls, role: str | None) -> int:
        """0 for no role at all, then in the order above."""
        return [None, *cls.values].index(role) if role in cls.values or role is None else 0

    @classmethod
    def at_least(cls, role: str) -> list[str]:
        return cls.values[cls.values.index(role):]


class TokenScope(models.TextChoices):
    READ = "read", "read"
    WRITE = "write", "write"
