"""The OpenAPI schema documents each operation's failures and each field's
rules (loopr/schema.py); tests/test_api_schemathesis.py holds the API to it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api) -> dict:
    return api.get("/api/schema/?format=json").json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def test_every_operation_documents_its_failures(schema):
    seen = 0
    for path, method, operation in operations(schema):
        codes = set(operation["responses"])
        where = f"{method.upper()} {path}"
        # Every API operation needs a login, but the loopr.yaml JSON Schema
        # (editors and CI validators fetch it without one).
        if (method, path) != ("get", "/api/v1/config/schema.json"):
            assert {"401", "403"} <= codes, where
        else:
            assert not {"401", "403"} & codes, where
        # An id in the path, or pages: a 404.
        if "{" in path or "page" in {p["name"] for p in operation.get("parameters", [])}:
            assert "404" in codes, where
        # A write, or query parameters: a 400 naming what is wrong.
        if method in ("post", "put", "patch") or any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "400" in codes, where
        for code in codes - {"200", "201", "204"}:
            assert operation["responses"][code]["content"], where
        seen += 1
    assert seen > 30


def test_the_schema_says_each_fields_rules(schema):
    components = schema["components"]["schemas"]
    monitor = components["MonitorRequest"]["properties"]
    assert monitor["name"]["minLength"] == 1 and monitor["name"]["maxLength"] == 200
    assert monitor["headers"]["type"] == "object" and "nullable" not in monitor["headers"]
    assert monitor["assertions"]["type"] == "array"
    steps = components["EscalationPolicyRequest"]["properties"]["steps"]
    assert steps["items"]["required"] == ["after_minutes", "channels"]
    assert components["EscalationPolicyRequest"]["properties"]["repeat_minutes"]["minimum"] == 5
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/incidents/"]["get"]["parameters"]}
    assert parameters["monitor"]["schema"]["minimum"] == 1
    assert parameters["open"]["schema"]["type"] == "boolean"
    assert parameters["since"]["schema"]["format"] == "date-time"
    assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1}
    # A stored blank ("not acknowledged") is among the documented values.
    via = components["Incident"]["properties"]["acknowledged_via"]
    assert {"$ref": "#/components/schemas/BlankEnum"} in via["oneOf"]


@pytest.mark.parametrize("path", ["/api/v1/monitors/1.5/", "/api/v1/no-such-thing/", "/api/v1/regions/%C2%84/"])
def test_an_api_url_that_matches_nothing_is_a_json_404(api, path):
    response = api.get(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_site_url_that_matches_nothing_is_still_an_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_every_text_query_parameter_excludes_nul_and_a_time_of_day_has_no_offset(schema):
    for path, method, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            rules = parameter["schema"]
            if parameter["in"] == "query" and rules.get("type") == "string" and parameter["name"] != "cursor":
                assert {"enum", "format", "pattern"} & rules.keys(), (method, path, parameter["name"])
    names = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/monitors/"]["get"]["parameters"]}
    assert names["name"]["pattern"] == "^[^\\u0000]*$"
    reports = {p["name"] for p in schema["paths"]["/api/v1/status-reports/"]["get"]["parameters"]}
    assert {"status_page", "page"} <= reports  # the filter and the page number, apart
    start = schema["components"]["schemas"]["MaintenanceWindowRequest"]["properties"]["start_time"]
    assert "format" not in start and start["pattern"].startswith("^")
    quiet = schema["components"]["schemas"]["Channel"]["properties"]["quiet_hours_start"]
    assert "format" not in quiet and quiet["pattern"] == start["pattern"]
