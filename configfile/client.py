#!/usr/bin/env python3
"""loopr-config: plan, apply and export a loopr.yaml against a Loopr server,
for CI pipelines. Needs only Python 3 and `requests`: copy this one file
(bin/loopr-config) wherever it runs.

    loopr-config plan   -f loopr.yaml [--detailed-exitcode]
    loopr-config apply  -f loopr.yaml
    loopr-config export -f loopr.yaml

The server and token come from --url/--token or LOOPR_URL/LOOPR_TOKEN (an API
token: Authorization: Token …). ${VARIABLE} references in the file (channel
secrets) are sent with their values from this process's environment, and only
those. Exit status: 0 done (plan: no changes), 1 error, 2 (plan with
--detailed-exitcode) changes to apply.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


class ClientError(Exception):
    pass


def request_body(text: str, variables: dict[str, str], **settings) -> tuple[bytes, str]:
    """The file as sent: as written, with the variables and settings (team,
    prune, revision) added at the top level. YAML gets them as flow-style
    lines (JSON is YAML) so that this client needs no YAML library."""
    extra = {name: value for name, value in settings.items() if value is not None}
    if variables:
        extra["variables"] = variables
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ClientError(f"the file starts like JSON but does not parse: {exc}") from exc
        return json.dumps({**data, **extra}).encode(), "application/json"
    lines = "".join(f"\n{key}: {json.dumps(value)}" for key, value in extra.items())
    return (text.rstrip("\n") + "\n" + lines.lstrip("\n") + ("\n" if lines else "")).encode(), "application/yaml"


def referenced_variables(text: str, environ: dict[str, str]) -> dict[str, str]:
    """The values of the variables the file refers to that are set here (an
    unset one is left for the server to name, at its path in the file)."""
    return {name: environ[name] for name in sorted(set(REFERENCE.findall(text))) if name in environ}


def render_changes(changes: list[dict]) -> str:
    """A plan as a person reads it: + create, ~ update, - delete, each changed
    field as old -> new."""
    if not changes:
        return "No changes: the objects match the file.\n"
    marks = {"create": "+", "update": "~", "delete": "-"}
    out = []
    for change in changes:
        out.append(f"{marks.get(change['action'], '?')} {change['action']} {change['type']} {change['slug']}")
        for name, (old, new) in change["diff"].items():
            if name == "managed" and change["action"] != "update":
                continue  # every object a file creates is managed; only adopting one is news
            if change["action"] == "create":
                out.append(f"    {name}: {_value(new)}")
            elif change["action"] == "delete":
                out.append(f"    {name}: {_value(old)}")
            else:
                out.append(f"    {name}: {_value(old)} -> {_value(new)}")
    counts = {action: sum(1 for c in changes if c["action"] == action) for action in marks}
    out.append(f"\nPlan: {counts['create']} to create, {counts['update']} to update, {counts['delete']} to delete.")
    return "\n".join(out) + "\n"


def _value(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def render_errors(answer: dict) -> str:
    if "errors" in answer:
        return "\n".join(f"{e['path']}: {e['message']}" for e in answer["errors"]) + "\n"
    return f"{answer.get('detail', answer)}\n"


class Remote:
    def __init__(self, url: str, token: str, timeout: float = 120):
        import requests

        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.timeout = timeout

    def post(self, verb: str, body: bytes, content_type: str) -> tuple[int, dict]:
        response = self.session.post(f"{self.url}/api/v1/config/{verb}/", data=body,
                                     headers={"Content-Type": content_type}, timeout=self.timeout)
        return response.status_code, _json(response)

    def export(self, team: str | None) -> tuple[int, str]:
        params = {"team": team} if team else {}
        response = self.session.get(f"{self.url}/api/v1/config/export/", params=params, timeout=self.timeout)
        return response.status_code, response.text


def _json(response) -> dict:
    try:
        return response.json()
    except ValueError:
        return {"detail": f"HTTP {response.status_code}: {response.text[:500]}"}


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(prog="loopr-config", description=__doc__.split("\n\n")[0])
    parser.add_argument("verb", choices=["plan", "apply", "export"])
    parser.add_argument("-f", "--file", default="loopr.yaml", help="the file (export: where to write; - for stdout)")
    parser.add_argument("--url", default=environ.get("LOOPR_URL"), help="the Loopr server (LOOPR_URL)")
    parser.add_argument("--token", default=environ.get("LOOPR_TOKEN"), help="an API token (LOOPR_TOKEN)")
    parser.add_argument("--team", help="the id of the team the file describes (default: the file's `team`, "
                                       "else your personal team, or a team token's team)")
    parser.add_argument("--prune", action="store_true", help="delete managed objects the file no longer lists")
    parser.add_argument("--detailed-exitcode", action="store_true", help="plan: exit 2 when there are changes")
    args = parser.parse_args(argv)
    if not args.url or not args.token:
        parser.error("the server and a token are needed: --url and --token, or LOOPR_URL and LOOPR_TOKEN")
    remote = Remote(args.url, args.token)
    try:
        if args.verb == "export":
            return _export(remote, args)
        return _plan_or_apply(remote, args, environ)
    except ClientError as exc:
        sys.stderr.write(f"loopr-config: {exc}\n")
        return EXIT_ERROR


def _export(remote: Remote, args) -> int:
    status, text = remote.export(args.team)
    if status != 200:
        sys.stderr.write(text + "\n")
        return EXIT_ERROR
    if args.file == "-":
        sys.stdout.write(text)
    else:
        with open(args.file, "w", encoding="utf-8") as out:
            out.write(text)
    return EXIT_OK


def _plan_or_apply(remote: Remote, args, environ: dict[str, str]) -> int:
    try:
        with open(args.file, encoding="utf-8") as source:
            text = source.read()
    except OSError as exc:
        raise ClientError(f"cannot read {args.file}: {exc.strerror}") from exc
    variables = referenced_variables(text, environ)
    settings = {"team": args.team, "prune": True if args.prune else None}
    status, answer = remote.post("plan", *request_body(text, variables, **settings))
    if status != 200:
        sys.stderr.write(render_errors(answer))
        return EXIT_ERROR
    sys.stdout.write(render_changes(answer["changes"]))
    if args.verb == "plan":
        return EXIT_CHANGES if args.detailed_exitcode and answer["changes"] else EXIT_OK
    if not answer["changes"]:
        return EXIT_OK
    status, applied = remote.post("apply", *request_body(text, variables, revision=answer["revision"], **settings))
    if status != 200:
        sys.stderr.write(render_errors(applied))
        return EXIT_ERROR
    sys.stdout.write(f"Applied {len(applied['changes'])} change(s).\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
