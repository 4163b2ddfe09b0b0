"""The audit log's entries: who did what to which object of a team.

The API and the admin both write through here, so that a change reads the
same in the log whichever way it was made."""

from __future__ import annotations

import datetime
import decimal
import uuid
from contextlib import contextmanager

from django.db import models, transaction

from loopr.querysets import team_id_of

from .models import ApiToken, AuditEntry, Invitation, Membership

REDACTED = "[redacted]"
# Field names whose values never go into the log.
SECRET_WORDS = ("secret", "password", "token", "key_hash", "api_key")


def snapshot(obj: models.Model) -> dict:
    """The object's fields as plain values, to compare before and after a
    change: its concrete fields, its many-to-many fields (sorted ids: a
    monitor's channels) and the parts a model names in `audited_parts`
    (reverse relations edited with it, such as a status page's components,
    as their names)."""
    values = {field.attname: _plain(getattr(obj, field.attname)) for field in obj._meta.concrete_fields}
    if obj.pk is None:
        return values
    for field in obj._meta.many_to_many:
        # Relations with a model of their own (a team's members) are logged as changes of that model.
        if field.remote_field.through._meta.auto_created:
            # Read from the database, never a prefetched list: after a change it would be stale.
            values[field.name] = sorted(getattr(obj, field.name).values_list("pk", flat=True))
    for name in getattr(obj, "audited_parts", ()):
        relation = obj._meta.get_field(name)
        parts = relation.related_model._base_manager.filter(**{relation.field.name: obj.pk})
        values[name] = [str(part) for part in parts]
    return values


def diff(before: dict, after: dict) -> dict:
    return {name: ([REDACTED, REDACTED] if _secret(name) else [before.get(name), value])
            for name, value in after.items() if before.get(name) != value and name not in ("updated_at",)}


def update_action(obj: models.Model, changes: dict) -> str:
    """What an update is called in the log: pausing or resuming when it
    (un)paused a monitor (what follows from it, status and schedule, is in
    `changes` too), else "update"."""
    if "paused" in changes:
        return "pause" if obj.paused else "resume"
    return "update"


@contextmanager
def change(request, obj: models.Model, action: str | None = None):
    """Around a change of `obj`: the change and its entry (the fields that
    changed, old and new) commit together."""
    before = snapshot(obj)
    with transaction.atomic(savepoint=False):
        yield
        changes = diff(before, snapshot(obj))
        # A save that changed nothing is no event (as in the admin); a named
        # action (pause, rotate-secret) is one even when it changed nothing.
        if changes or action:
            record(request, action or update_action(obj, changes), obj, changes)


def record(request, action: str, obj: models.Model, changes: dict | None = None, team_id: int | None = None,
           actor_name: str = "") -> None:
    """One entry, in the caller's transaction."""
    entry(request, action, obj, changes, team_id, actor_name).save()


def record_many(request, action: str, objs: list[models.Model]) -> None:
    """An entry for each object (a list of monitors created at once), in one statement per batch."""
    AuditEntry.objects.bulk_create([entry(request, action, obj) for obj in objs], batch_size=500)


def entry(request, action: str, obj: models.Model, changes: dict | None = None,
          team_id: int | None = None, actor_name: str = "") -> AuditEntry:
    """`actor_name` names who did it when no one is signed in (an
    acknowledgement link: where it was sent)."""
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    token = getattr(request, "auth", None)
    if team_id is None:
        team_id = getattr(obj, "audit_team_id", None) or team_id_of(obj)
    return AuditEntry(
        team_id=team_id,
        actor=user if signed_in else None, actor_name=user.get_username() if signed_in else actor_name[:150],
        token_name=token.name if isinstance(token, ApiToken) else "",
        action=action, object_type=obj._meta.model_name, object_id=str(obj.pk)[:64], object_repr=str(obj)[:200],
        changes=changes or {},
    )


# Members, invitations and tokens: the same entry whether the API or the admin made the change.

def member_added(request, membership: Membership) -> None:
    record(request, "member-add", membership, {"role": [None, membership.role]})


def member_changed(request, membership: Membership, old_role: str) -> None:
    record(request, "member-change", membership, {"role": [old_role, membership.role]})


def member_removed(request, membership: Membership) -> None:
    record(request, "member-remove", membership, {"role": [membership.role, None]})


def invited(request, invitation: Invitation) -> None:
    record(request, "invite", invitation, {"email": [None, invitation.email], "role": [None, invitation.role]})


def invitation_revoked(request, invitation: Invitation) -> None:
    record(request, "invite-revoke", invitation, {"email": [invitation.email, None]})


def token_created(request, token: ApiToken) -> None:
    record(request, "token-create", token, {"scope": [None, token.scope]})


def token_revoked(request, token: ApiToken) -> None:
    record(request, "token-revoke", token)


def _secret(name: str) -> bool:
    return any(word in name for word in SECRET_WORDS)


def _plain(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return value
