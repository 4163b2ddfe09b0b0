"""python manage.py loopr_config plan|apply|export --user NAME [--team …] -f loopr.yaml

The same plan, apply and export as /api/v1/config/, against the local
database, for a user named on the command line (there is no request).
${VARIABLE} references are resolved from this process's environment."""

from __future__ import annotations

import os
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from configfile.client import EXIT_CHANGES, referenced_variables, render_changes
from configfile.document import FileInvalid, Problem, dumped, parse, read
from configfile.planning import Conflict, apply, exported, plan
from configfile.scope import ScopeError, ScopeForbidden, scope_for
from teams.choices import Role


class Command(BaseCommand):
    help = "Plan, apply or export a loopr.yaml (monitoring as code) against the local database."

    def add_arguments(self, parser) -> None:
        parser.add_argument("verb", choices=["plan", "apply", "export"])
        parser.add_argument("-f", "--file", default="loopr.yaml", help="the file (export: where to write; - for stdout)")
        parser.add_argument("--user", required=True, help="the username whose objects the file describes")
        parser.add_argument("--team", help="the id of the team the file describes (default: the file's `team`, "
                                           "else the user's personal team); plan and export need the user's viewer "
                                           "role there, apply editor")
        parser.add_argument("--prune", action="store_true", help="delete managed objects the file no longer lists")
        parser.add_argument("--detailed-exitcode", action="store_true", help="plan: exit 2 when there are changes")

    def handle(self, *args, verb: str, file: str, user: str, team: str | None, prune: bool,
               detailed_exitcode: bool, **options) -> None:
        account = get_user_model().objects.filter(username=user).first()
        if account is None:
            raise CommandError(f"No user {user!r}.")
        if verb == "export":
            return self.export(account, team, file)
        try:
            changes = self.plan_or_apply(verb, account, team, prune, file)
        except FileInvalid as exc:
            raise CommandError("\n" + "\n".join(f"{p.path}: {p.message}" for p in exc.problems)) from exc
        except Conflict as exc:
            raise CommandError(str(exc)) from exc
        if verb == "plan" and detailed_exitcode and changes:
            sys.exit(EXIT_CHANGES)

    def plan_or_apply(self, verb: str, account, team: str | None, prune: bool, file: str) -> list:
        try:
            with open(file, "rb") as source:
                body = source.read()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from exc
        data = parse(body, "application/json" if file.endswith(".json") else "")
        if team is not None:
            data["team"] = team
        if prune:
            data["prune"] = True
        data["variables"] = referenced_variables(body.decode(), dict(os.environ))
        document = read(data)
        try:
            scope = scope_for(account, document.team, Role.EDITOR if verb == "apply" else Role.VIEWER)
        except (ScopeError, ScopeForbidden) as exc:
            raise FileInvalid([Problem("team", str(exc))]) from exc
        planned = plan(scope, document)
        self.stdout.write(render_changes([c.as_dict() for c in planned.changes]), ending="")
        if verb == "plan" or not planned.changes:
            return planned.changes
        document.revision = planned.revision
        applied = apply(scope, document)
        self.stdout.write(f"Applied {len(applied.changes)} change(s).")
        return applied.changes

    def export(self, account, team: str | None, file: str) -> None:
        try:
            scope = scope_for(account, team, Role.VIEWER)
        except (ScopeError, ScopeForbidden) as exc:
            raise CommandError(str(exc)) from exc
        text = dumped(exported(scope))
        if file == "-":
            self.stdout.write(text, ending="")
        else:
            with open(file, "w", encoding="utf-8") as out:
                out.write(text)
