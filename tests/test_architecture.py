"""Which module may import which: the direction data flows in, kept true.

Read from the source with `ast`, function-level imports included (a lazy
import is still a dependency). The rules:

- No import cycle between any two of Loopr's modules.
- Between the apps' domains, one direction: `teams` (who shares what, with
  which role) is at the very bottom and imports no app; `monitors` (monitors, results,
  probes, ingest, verdicts, the shared vocabulary) is at the bottom;
  `workers` (the fleet, dispatch, the probe node) and `notifications`
  (channels, the outbox, transports) build on it and never on each other;
  nor does `statuspages` (public pages, badges), which reads monitors (and teams).
  `monitors` hands its announcements to whoever listens through a signal.
- The interface layer — each app's `api/` and `admin.py`, `loopr.urls`,
  `loopr.admin`, and `configfile` (monitoring as code) — sits on top and may compose the apps (a monitor's form
  offers its owner's channels), but nothing below imports it.
- `loopr`'s own plumbing (`loopr.net`, `loopr.formatting`, …) imports no app.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("loopr", "teams", "monitors", "workers", "notifications", "statuspages", "configfile")
APPS = ("teams", "monitors", "workers", "notifications", "statuspages")
# Who may import whom among the apps' domain modules.
ALLOWED = {"teams": set(), "monitors": {"teams"}, "workers": {"monitors", "teams"},
           "notifications": {"monitors", "teams"}, "statuspages": {"monitors", "teams"}}
INTERFACE_PARTS = {"api", "admin", "management"}
INTERFACE_MODULES = {"loopr.urls", "loopr.admin", "loopr.api", "loopr.metrics"}
# Apps that are interface through and through: configfile speaks through the API's serializers.
INTERFACE_APPS = {"configfile"}
# The Celery app finds every app's tasks by name; Django's settings name apps.
WIRING_MODULES = {"loopr.celery", "loopr.settings", "loopr", "loopr.wsgi", "loopr.health"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules that `name` imports (the longest known prefix of each)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            parts = candidate.split(".")
            for end in range(len(parts), 0, -1):
                prefix = ".".join(parts[:end])
                if prefix in known and prefix != name:
                    targets.add(prefix)
                    break
    return targets


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    if module in INTERFACE_MODULES or parts[0] in INTERFACE_APPS or (parts[0] in APPS and len(parts) > 1 and parts[1] in INTERFACE_PARTS):
        return "interface"
    if module in WIRING_MODULES:
        return "wiring"
    return parts[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_two_modules_import_each_other_even_through_others():
    # A package's __init__ that re-exports its own modules is not a cycle.
    edges = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph().items()}
    assert cycles(edges) == []


def test_between_the_apps_imports_go_one_way_workers_and_notifications_build_on_monitors():
    wrong = defaultdict(list)
    for module, targets in graph().items():
        source = layer(module)
        if source not in ALLOWED:
            continue
        for target in targets:
            destination = layer(target)
            if destination in APPS and destination != source and destination not in ALLOWED[source]:
                wrong[source].append(f"{module} -> {target}")
    assert dict(wrong) == {}


def test_nothing_below_the_interface_layer_imports_it():
    wrong = [f"{m} -> {t}" for m, targets in graph().items() if layer(m) in (*APPS, "loopr")
             for t in targets if layer(t) == "interface"]
    assert wrong == []


def test_loopr_s_own_plumbing_imports_no_app():
    wrong = [f"{m} -> {t}" for m, targets in graph().items() if layer(m) == "loopr"
             for t in targets if layer(t) in APPS]
    assert wrong == []
