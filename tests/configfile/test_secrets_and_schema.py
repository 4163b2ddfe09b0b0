"""Secrets never leave Loopr through a file; the JSON Schema describes the file."""

from __future__ import annotations

import jsonschema
import yaml

from notifications.models import Channel
from tests.configfile.conftest import (
    EXPORT,
    PLAN,
    SCHEMA,
    apply_planned,
    changes_of,
    readme_example,
)

OPSGENIE = """
channels:
  - slug: og
    name: Opsgenie
    kind: opsgenie
    target: eu
    secret: ${OG_KEY}
"""


def test_a_secret_is_applied_from_its_variable_and_never_exported(api, user):
    apply_planned(api, OPSGENIE, variables={"OG_KEY": "key-one-1234567890"})
    assert Channel.objects.get(slug="og").secret == "key-one-1234567890"
    exported = api.get(EXPORT)
    assert b"key-one-1234567890" not in exported.content
    assert "secret" not in yaml.safe_load(exported.content)["channels"][0]
    as_json = api.get(EXPORT, {"format": "json"})
    assert "key-one-1234567890" not in as_json.content.decode()
    # The export still round-trips: a secret left out keeps the stored one.
    assert changes_of(api, exported.content.decode()) == []


def test_a_changed_secret_shows_in_the_plan_without_its_value(api, user):
    apply_planned(api, OPSGENIE, variables={"OG_KEY": "key-one-1234567890"})
    assert changes_of(api, OPSGENIE, variables={"OG_KEY": "key-one-1234567890"}) == []
    (change,) = changes_of(api, OPSGENIE, variables={"OG_KEY": "key-two-1234567890"})
    assert change["diff"] == {"secret": ["(hidden)", "(hidden)"]}
    assert "key-" not in str(change)


def test_the_schema_is_served_without_login_and_validates_the_readme_example(client, db):
    answer = client.get(SCHEMA)
    assert answer.status_code == 200
    schema = answer.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    example = yaml.safe_load(readme_example())
    jsonschema.Draft202012Validator(schema).validate(example)
    assert [m["slug"] for m in example["monitors"]] == ["shop", "db", "nightly-backup"]


def test_the_schema_refuses_what_the_server_refuses(client, db):
    validator = jsonschema.Draft202012Validator(client.get(SCHEMA).json())
    example = yaml.safe_load(readme_example())
    example["monitors"][0]["intervall"] = 60  # an unknown key
    example["monitors"][1]["method"] = "FETCH"  # not a choice
    example["channels"][0].pop("slug")
    found = {(tuple(e.absolute_path), e.validator) for e in validator.iter_errors(example)}
    assert found == {(("monitors", 0), "additionalProperties"), (("monitors", 1, "method"), "enum"),
                     (("channels", 0), "required")}


def test_the_schema_follows_the_api_serializers(client, db):
    monitor = client.get(SCHEMA).json()["properties"]["monitors"]["items"]["properties"]
    # Fields, bounds and help texts come from the serializers the API uses.
    assert monitor["retries"]["type"] == "integer" and monitor["retries"]["minimum"] == 0
    assert monitor["channels"]["type"] == "array" and monitor["channels"]["items"]["type"] == "string"
    assert "id" not in monitor and "status" not in monitor and "managed" not in monitor


def test_export_answers_yaml_by_default_or_by_format_and_json_by_format_or_accept(api, user):
    from monitors.models import Monitor

    Monitor.objects.create(owner=user, name="site", url="http://127.0.0.1:9/")
    for query, headers in (("", {}), ("?format=yaml", {})):
        response = api.get(EXPORT + query, **headers)
        assert response.status_code == 200 and response["Content-Type"].startswith("application/yaml")
        assert yaml.safe_load(response.content)["monitors"][0]["slug"] == "site"
    for query, headers in (("?format=json", {}), ("", {"HTTP_ACCEPT": "application/json"})):
        response = api.get(EXPORT + query, **headers)
        assert response.status_code == 200 and response.json()["monitors"][0]["slug"] == "site"
    # A format it does not speak is DRF's 404; errors are JSON whatever was asked.
    assert api.get(EXPORT + "?format=xml").status_code == 404
    refused = api.get(EXPORT + "?team=not-a-number&format=yaml")
    assert refused.status_code == 400 and refused["Content-Type"] == "application/json" and refused.json()["errors"]


def test_a_json_null_is_no_file_but_an_empty_yaml_file_is_one_with_no_objects(api):
    refused = api.post(PLAN, "null", content_type="application/json")
    assert refused.status_code == 400, refused.content
    assert api.post(PLAN, "", content_type="application/yaml").json()["changes"] == []


def test_the_files_json_schema_is_public_and_ignores_stale_credentials(db):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token revoked-long-ago")
    assert client.get(SCHEMA).status_code == 200
