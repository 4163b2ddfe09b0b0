"""The audit log's entries: who did what to which object of a team."""

from __future__ import annotations

import datetime
import decimal
import uuid

from django.db import models

from loopr.querysets import team_id_of

from .models import ApiToken, AuditEntry

REDACTED = "[redacted]"
# Field names whose values never go into the log.
SECRET_WORDS = ("secret", "password", "token", "key_hash", "api_key")


def snapshot(obj: models.Model) -> dict:
    """The object's concrete fields as plain values, to compare before and after a change."""
    return {field.attname: _plain(getattr(obj, field.attname)) for field in obj._meta.concrete_fields}


def diff(before: dict, after: dict) -> dict:
    return {name: ([REDACTED, REDACTED] if _secret(name) else [before.get(name), value])
            for name, value in after.items() if before.get(name) != value and name not in ("updated_at",)}


def record(request, action: str, obj: models.Model, changes: dict | None = None, team_id: int | None = None) -> None:
    """One entry, in the caller's transaction."""
    entry(request, action, obj, changes, team_id).save()


def record_many(request, action: str, objs: list[models.Model]) -> None:
    """An entry for each object (a list of monitors created at once), in one statement per batch."""
    AuditEntry.objects.bulk_create([entry(request, action, obj) for obj in objs], batch_size=500)


def entry(request, action: str, obj: models.Model, changes: dict | None = None,
          team_id: int | None = None) -> AuditEntry:
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    token = getattr(request, "auth", None)
    return AuditEntry(
        team_id=team_id if team_id is not None else team_id_of(obj),
        actor=user if signed_in else None, actor_name=user.get_username() if signed_in else "",
        token_name=token.name if isinstance(token, ApiToken) else "",
        action=action, object_type=obj._meta.model_name, object_id=str(obj.pk)[:64], object_repr=str(obj)[:200],
        changes=changes or {},
    )


def _secret(name: str) -> bool:
    return any(word in name for word in SECRET_WORDS)


def _plain(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return value
