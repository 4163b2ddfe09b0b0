"""Plan and apply: a file compared with a scope's objects, and made true.

A plan writes the file in a transaction exactly as an apply does, reads the
state before and after, and rolls back: the changes it shows are the ones
the same code makes, defaults and normalisation included (an email address
stripped, a monitor's kind taken from its URL). Its revision is a digest of
the state before and of the file; an apply given it makes the changes only
if both are still what was planned, else a 409, so nothing unplanned is ever
written."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import transaction
from rest_framework.exceptions import ValidationError

from loopr.declarative import fill_slugs

from .document import SECTIONS, Document, FileInvalid, Problem, Section, problems_of
from .scope import Scope

# What a change says instead of a secret's value.
HIDDEN = "(hidden)"
# The slug of the throwaway object that finds a new object's defaults.
PROBE_SLUG = "--loopr-defaults--"


class Conflict(Exception):
    """The scope's objects, or the file, are not what the plan was made from."""


@dataclass(frozen=True)
class Change:
    action: str  # create | update | delete
    type: str
    slug: str
    diff: dict[str, list]

    def as_dict(self) -> dict:
        return {"action": self.action, "type": self.type, "slug": self.slug, "diff": self.diff}


@dataclass(frozen=True)
class Outcome:
    revision: str
    changes: list[Change]


def plan(scope: Scope, document: Document) -> Outcome:
    with transaction.atomic():
        before = _begin(scope)
        _write(scope, document, before)
        changes = diff(before, state(scope))
        transaction.set_rollback(True)
    return Outcome(revision(before, document), changes)


def apply(scope: Scope, document: Document) -> Outcome:
    with transaction.atomic():
        before = _begin(scope)
        if document.revision != revision(before, document):
            raise Conflict("The objects, or the file, changed since the plan with this revision: plan again.")
        _write(scope, document, before)
        changes = diff(before, state(scope))
    return Outcome(document.revision, changes)


def _begin(scope: Scope) -> dict:
    scope.lock()
    name_unnamed(scope)
    return state(scope)


def revision(before: dict, document: Document) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(before, sort_keys=True, default=str).encode())
    digest.update(document.canonical().encode())
    digest.update(json.dumps(_digests(document.variables), sort_keys=True).encode())
    return digest.hexdigest()[:32]


def name_unnamed(scope: Scope) -> None:
    """Objects inserted without a slug (in bulk, not through save) get one,
    so that a file can name them (in the plan's transaction, rolled back
    with it, or for good in an apply's or an export's)."""
    for section in SECTIONS:
        unnamed = list(scope.objects(section.model).filter(slug="").order_by("id"))
        if unnamed:
            fill_slugs(unnamed)
            section.model.objects.bulk_update(unnamed, ["slug"])


def state(scope: Scope) -> dict[str, dict[str, dict]]:
    """Every object of the scope as the file would declare it, by section
    and slug, with whether it is managed and a digest of a channel's secret
    (so that a changed secret shows, though never its value)."""
    context = scope.context()
    found = {}
    for section in SECTIONS:
        objects = _with_relations(section, scope.objects(section.model)).order_by("slug")
        entries = {}
        for obj in objects:
            entry = section.serializer(obj, context=context).data
            entry = dict(entry)
            entry["managed"] = obj.managed
            if section.key == "channels":
                entry["secret"] = _digest(obj.secret) if obj.secret else ""
            entries[obj.slug] = entry
        found[section.key] = entries
    return found


def _with_relations(section: Section, queryset):
    if section.key == "monitors":
        return queryset.prefetch_related("regions", "channels").select_related("escalation_policy")
    if section.key == "maintenance_windows":
        return queryset.prefetch_related("monitors")
    return queryset


def exported(scope: Scope) -> dict:
    """The scope as a file that applies with no change (secrets left out)."""
    with transaction.atomic():
        scope.lock()
        name_unnamed(scope)
        current = state(scope)
    document: dict = {"version": 1}
    for section in SECTIONS:
        items = []
        for entry in current[section.key].values():
            item = {key: value for key, value in entry.items() if key not in ("managed", "secret")}
            items.append(item)
        document[section.key] = items
    return document


def _write(scope: Scope, document: Document, before: dict) -> None:
    """The file made true in the current transaction; FileInvalid (every
    problem found, with its path) if any object is refused."""
    problems: list[Problem] = []
    if document.prune:
        _prune(scope, document)
    context = scope.context(variables=document.variables)
    for section in SECTIONS:
        existing = {obj.slug: obj for obj in scope.objects(section.model)}
        for index, item in enumerate(document.sections.get(section.key, [])):
            instance = existing.get(item["slug"])
            if instance is None:
                serializer = section.serializer(data=item, context=context)
            else:
                whole = _as_declared(scope, section, item, context)
                if isinstance(whole, Exception):
                    problems.extend(problems_of(f"{section.key}[{index}]", whole.detail))
                    continue
                serializer = section.serializer(instance, data=whole, context=context)
            if not serializer.is_valid():
                problems.extend(problems_of(f"{section.key}[{index}]", serializer.errors))
                continue
            extra = {"managed": True} if instance is not None else {**scope.new_object_fields(), "managed": True}
            serializer.save(**extra)
    if problems:
        raise FileInvalid(problems)


def _as_declared(scope: Scope, section: Section, item: dict, context: dict) -> dict | ValidationError:
    """The item with each field it leaves out at the value a new object
    would get (the API's defaults, whatever they depend on): what the file
    declares is the whole object, so that an edit of a field the file does
    not list still shows as drift. Found by creating the object in a
    savepoint that is rolled back; the item's errors if it could not be."""
    if all(name in item for name in section.declarable_fields() if name != "secret"):
        return item
    with transaction.atomic():
        probe = section.serializer(data={**item, "slug": PROBE_SLUG}, context=context)
        if not probe.is_valid():
            transaction.set_rollback(True)
            return ValidationError(probe.errors)
        created = probe.save(**scope.new_object_fields())
        defaults = dict(section.serializer(created, context=context).data)
        transaction.set_rollback(True)
    return {**defaults, **item}


def _prune(scope: Scope, document: Document) -> None:
    """Managed objects the file no longer lists are deleted, in the reverse
    of the order they refer to each other; nothing made by hand ever is."""
    for section in reversed(SECTIONS):
        listed = {item["slug"] for item in document.sections.get(section.key, [])}
        scope.objects(section.model).filter(managed=True).exclude(slug__in=listed).delete()


def diff(before: dict, after: dict) -> list[Change]:
    changes = []
    for section in SECTIONS:
        old_entries, new_entries = before[section.key], after[section.key]
        for slug in sorted(old_entries.keys() | new_entries.keys()):
            old, new = old_entries.get(slug), new_entries.get(slug)
            if old == new:
                continue
            action = "create" if old is None else "delete" if new is None else "update"
            fields = (old or new).keys() | (new or old).keys()
            changed = {name: _shown(name, (old or {}).get(name), (new or {}).get(name))
                       for name in sorted(fields)
                       if (old or {}).get(name) != (new or {}).get(name)}
            changes.append(Change(action, section.type, slug, changed))
    return changes


def _shown(name: str, old, new) -> list:
    if name == "secret":
        return [HIDDEN if old else None, HIDDEN if new else None]
    return [old, new]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _digests(variables: dict[str, str]) -> dict[str, str]:
    return {name: _digest(value) for name, value in variables.items()}
