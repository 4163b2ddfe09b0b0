"""The loopr.yaml format: its sections, how a body is read (YAML or JSON),
what is wrong with it (each problem at its path in the file, e.g.
`monitors[3].assertions[0].op`), and its JSON Schema, made from the same
serializers that read it."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field

import yaml
from rest_framework import serializers

from monitors.models import MaintenanceWindow, Monitor
from notifications.models import Channel, EscalationPolicy

from .serializers import (
    FileChannelSerializer,
    FileEscalationPolicySerializer,
    FileMaintenanceWindowSerializer,
    FileMonitorSerializer,
)

FORMAT_VERSION = 1
# More objects than one file sensibly holds; each is validated and compared.
MAX_OBJECTS = 5000
MAX_BODY_BYTES = 10_000_000


@dataclass(frozen=True)
class Section:
    key: str  # in the file: `monitors:`
    type: str  # in a plan's changes: "monitor"
    model: type
    serializer: type[serializers.ModelSerializer]

    def declarable_fields(self) -> list[str]:
        return [name for name, f in self.serializer().fields.items() if not f.read_only]


# In the order they are written: each refers only to those before it. Pruning
# deletes in the reverse order.
SECTIONS = (
    Section("channels", "channel", Channel, FileChannelSerializer),
    Section("escalation_policies", "escalation_policy", EscalationPolicy, FileEscalationPolicySerializer),
    Section("monitors", "monitor", Monitor, FileMonitorSerializer),
    Section("maintenance_windows", "maintenance_window", MaintenanceWindow, FileMaintenanceWindowSerializer),
)
# Besides the sections: what the request says about the file.
SETTINGS_KEYS = {
    "version": "The format's version: 1.",
    "team": "The id of the team whose objects the file describes; left out: your personal team (a team token's team).",
    "prune": "true: delete managed objects the file no longer lists (never objects made by hand).",
    "revision": "apply only: the revision its plan answered, so that exactly the planned changes are made.",
    "variables": "The values of the ${VARIABLE} references (sent by the client from its environment; never stored).",
}


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def as_dict(self) -> dict:
        return {"path": self.path, "message": self.message}


class FileInvalid(Exception):
    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


@dataclass
class Document:
    """A file, read and checked for its shape (not yet for its values)."""

    sections: dict[str, list[dict]] = field(default_factory=dict)
    team: object = None
    prune: bool = False
    revision: str | None = None
    variables: dict[str, str] = field(default_factory=dict)

    def canonical(self) -> str:
        """The file as its revision is computed from (variables apart)."""
        return json.dumps({"sections": self.sections, "prune": self.prune}, sort_keys=True, default=str)


def parse(body: bytes, content_type: str = "") -> dict:
    """The body as a mapping: JSON when it says so, else YAML (of which JSON is
    a subset). A syntax error is a Problem at its line and column."""
    if len(body) > MAX_BODY_BYTES:
        raise FileInvalid([Problem("(file)", f"The file is over {MAX_BODY_BYTES} bytes.")])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileInvalid([Problem("(file)", f"Not UTF-8 text (byte {exc.start}).")]) from exc
    if "json" in content_type:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            where = f"line {exc.lineno}, column {exc.colno}: " if hasattr(exc, "lineno") else ""
            raise FileInvalid([Problem("(file)", f"JSON does not parse: {where}{getattr(exc, 'msg', exc)}.")]) from exc
    else:
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise FileInvalid([Problem("(file)", f"YAML does not parse: {where}{exc.problem or exc.context}.")]) from exc
        except (yaml.YAMLError, RecursionError) as exc:
            raise FileInvalid([Problem("(file)", f"YAML does not parse: {exc}.")]) from exc
    if data is None and "json" not in content_type:
        data = {}  # an empty YAML file: a file with no objects (JSON's null is no file at all)
    if not isinstance(data, dict):
        raise FileInvalid([Problem("(file)", "The file is a mapping of sections (monitors:, channels:, …).")])
    return data


class _Loader(yaml.SafeLoader):
    """Safe YAML, where a key given twice in one mapping is an error (PyYAML
    keeps the last silently) and dates stay the strings the API reads."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"the key {key!r} is given twice", key_node.start_mark)
            seen[key] = True
        return super().construct_mapping(node, deep)


# Timestamps and dates as strings: the serializers parse them, with their
# own messages, and a time such as 09:30 stays "09:30" (YAML 1.1 would make
# it a sexagesimal number of minutes).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (
        "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    + [(tag, regexp) for tag, regexp in _numbers if first in "-+0123456789."]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    for _numbers in [[
        ("tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9]*)$")),
        ("tag:yaml.org,2002:float", re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")),
    ]]
}


def dumped(data: dict) -> str:
    """A file as YAML, keys in the order given (slug and name first)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def read(data: dict) -> Document:
    """The document's shape checked: known keys (else a "did you mean"),
    sections as lists of objects, a slug on each and none twice."""
    problems: list[Problem] = []
    allowed = [*SETTINGS_KEYS, *(s.key for s in SECTIONS)]
    for key in data:
        if key not in allowed:
            problems.append(Problem(str(key), unknown_key(key, allowed)))
    document = Document(team=data.get("team"), revision=data.get("revision"))
    if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        problems.append(Problem("version", f"Only version {FORMAT_VERSION} exists."))
    prune = data.get("prune", False)
    if not isinstance(prune, bool):
        problems.append(Problem("prune", "true or false."))
    document.prune = prune is True
    if document.revision is not None and not isinstance(document.revision, str):
        problems.append(Problem("revision", "The revision string a plan answered."))
    variables = data.get("variables") or {}
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        problems.append(Problem("variables", "A mapping of variable names to string values."))
    else:
        document.variables = {str(k): v for k, v in variables.items()}
    total = 0
    for section in SECTIONS:
        items = data.get(section.key)
        if items is None:
            items = []
        if not isinstance(items, list):
            problems.append(Problem(section.key, "A list of objects."))
            continue
        total += len(items)
        problems.extend(_section_problems(section, items))
        document.sections[section.key] = items
    if total > MAX_OBJECTS:
        problems.append(Problem("(file)", f"At most {MAX_OBJECTS} objects in one file."))
    if problems:
        raise FileInvalid(problems)
    return document


def _section_problems(section: Section, items: list) -> list[Problem]:
    problems = []
    fields = section.declarable_fields()
    first_at: dict[str, int] = {}
    for index, item in enumerate(items):
        path = f"{section.key}[{index}]"
        if not isinstance(item, dict):
            problems.append(Problem(path, f"A {section.type.replace('_', ' ')} is a mapping of its fields."))
            continue
        for key in item:
            if key not in fields:
                problems.append(Problem(f"{path}.{key}", unknown_key(key, fields)))
        slug = item.get("slug")
        if not isinstance(slug, str) or not slug:
            problems.append(Problem(f"{path}.slug", "Required: the object's stable name in this file."))
        elif slug in first_at:
            problems.append(Problem(f"{path}.slug", f"Duplicate slug {slug!r}: also {section.key}[{first_at[slug]}]."))
        else:
            first_at[slug] = index
    return problems


def unknown_key(key: object, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else f" Known: {', '.join(allowed)}."
    return f"Unknown key {str(key)!r}.{hint}"


def problems_of(path: str, detail: object) -> list[Problem]:
    """A serializer's errors, flattened to paths in the file. The models'
    own messages about list items ("[0].op: unknown op …") extend the path."""
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            if key in ("non_field_errors",):
                found.extend(problems_of(path, value))
            elif isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                found.extend(problems_of(f"{path}[{key}]", value))
            else:
                found.extend(problems_of(f"{path}.{key}", value))
        return found
    if isinstance(detail, list):
        found = []
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                if value:
                    found.extend(problems_of(f"{path}[{index}]", value))
            else:
                found.extend(problems_of(path, value))
        return found
    message = str(detail)
    nested = re.match(r"^((?:\[\d+\])(?:\.[A-Za-z_]+|\[\d+\])*): (.*)$", message, re.S)
    if nested:
        return [Problem(path + nested[1], nested[2])]
    return [Problem(path, message)]
