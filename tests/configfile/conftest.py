from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.factories import RegionFactory

PLAN, APPLY, EXPORT, SCHEMA = ("/api/v1/config/plan/", "/api/v1/config/apply/", "/api/v1/config/export/",
                               "/api/v1/config/schema.json")
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The complete loopr.yaml of the README's "Monitoring as code"."""
    text = README.read_text()
    marker = text.index("<!-- loopr.yaml example")
    return re.search(r"```yaml\n(.*?)```", text[marker:], re.S)[1]


def with_settings(text: str, **settings) -> str:
    """The file with top-level settings (variables, revision, prune) added, as the clients send them."""
    return text.rstrip("\n") + "\n" + "".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items())


def plan(api, text: str, **settings):
    return api.post(PLAN, with_settings(text, **settings), content_type="application/yaml")


def apply_planned(api, text: str, **settings) -> dict:
    planned = plan(api, text, **settings)
    assert planned.status_code == 200, planned.json()
    applied = api.post(APPLY, with_settings(text, revision=planned.json()["revision"], **settings),
                       content_type="application/yaml")
    assert applied.status_code == 200, applied.json()
    assert applied.json()["changes"] == planned.json()["changes"]
    return applied.json()


def changes_of(api, text: str, **settings) -> list[dict]:
    answer = plan(api, text, **settings)
    assert answer.status_code == 200, answer.json()
    return answer.json()["changes"]


def errors_of(response) -> dict[str, str]:
    assert response.status_code == 400, response.content
    return {e["path"]: e["message"] for e in response.json()["errors"]}


@pytest.fixture
def eu_west(db):
    return RegionFactory(name="eu-west")


EXAMPLE_VARIABLES = {"OPSGENIE_API_KEY": "0123456789abcdef-opsgenie-key"}
