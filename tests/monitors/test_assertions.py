"""Typed assertions: validated at creation (a 400 naming the assertion's
index and field), evaluated by the probes against real servers."""

from __future__ import annotations

import json
import time

import pytest
from pytest_httpserver import HTTPServer

from monitors.choices import ErrorKind
from monitors.models import Monitor
from monitors.probes import CheckSpec, run_check
from monitors.probes.assertions import Observation, failed_assertion

MONITORS = "/api/v1/monitors/"
STATUS_DOC = {"status": "degraded", "items": [{"state": "ok", "load": 0.7}], "version": "2.1"}


def check(url: str, *assertions: dict, **spec) -> object:
    return run_check(CheckSpec(url, timeout=2, assertions=list(assertions), **spec))


# --- evaluation against a real server --------------------------------------


def test_a_failing_json_assertion_fails_the_check_and_names_itself(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/status").respond_with_json(STATUS_DOC)

    result = check(httpserver.url_for("/status"), {"source": "json", "property": "$.status", "op": "eq", "value": "ok"})

    # The check failed for that assertion, and the error says which and why.
    assert not result.ok
    assert result.error_kind == ErrorKind.ASSERTION
    assert result.error == 'json $.status: expected eq "ok", got "degraded"'
    assert result.status_code == 200


def test_all_assertions_holding_is_a_success(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/status").respond_with_json(STATUS_DOC, headers={"X-Build": "abc123"})

    result = check(
        httpserver.url_for("/status"),
        {"source": "status", "op": "in", "value": [200, 204]},
        {"source": "header", "property": "x-build", "op": "matches", "value": "^[a-f0-9]{6}$"},
        {"source": "header", "property": "Content-Type", "op": "contains", "value": "json"},
        {"source": "header", "property": "X-Missing", "op": "exists", "value": False},
        {"source": "body", "op": "contains", "value": '"version"'},
        {"source": "json", "property": "$.items[0].state", "op": "eq", "value": "ok"},
        {"source": "json", "property": "$.items[0].load", "op": "lt", "value": 0.9},
        {"source": "json", "property": "$.version", "op": "in", "value": ["2.0", "2.1"]},
        {"source": "json", "property": "$.items[?@.state == 'ok']", "op": "exists"},
        {"source": "latency", "op": "lt", "value": 2000},
    )

    assert result.ok, result.error
    assert result.error_kind == ErrorKind.OK


def test_a_missing_json_member_and_a_body_that_is_not_json_are_named(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/json").respond_with_json(STATUS_DOC)
    httpserver.expect_request("/html").respond_with_data("<html>hi</html>")

    missing = check(httpserver.url_for("/json"), {"source": "json", "property": "$.nope", "op": "eq", "value": 1})
    not_json = check(httpserver.url_for("/html"), {"source": "json", "property": "$.a", "op": "exists"})

    assert missing.error == "json $.nope: expected eq 1, got null"
    assert not_json.error_kind == ErrorKind.ASSERTION
    assert not_json.error.startswith("json $.a: the body is not JSON")


def test_the_keyword_stays_a_shorthand_for_a_body_contains(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("all systems go")

    keyword = run_check(CheckSpec(httpserver.url_for("/"), timeout=2, keyword="systems go"))
    both = check(httpserver.url_for("/"), {"source": "body", "op": "not_contains", "value": "error"},
                 keyword="nowhere")

    # The keyword alone works as before; with assertions it is still judged first.
    assert keyword.ok
    assert both.error_kind == ErrorKind.KEYWORD


def test_a_status_outside_the_expected_ranges_fails_before_any_assertion(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("down", status=503)

    result = check(httpserver.url_for("/"), {"source": "body", "op": "contains", "value": "up"})

    assert result.error_kind == ErrorKind.STATUS


def test_a_latency_assertion_fails_a_slow_answer(httpserver: HTTPServer) -> None:
    def slow(request):
        time.sleep(0.3)
        from werkzeug import Response
        return Response("ok")

    httpserver.expect_request("/slow").respond_with_handler(slow)

    result = check(httpserver.url_for("/slow"), {"source": "latency", "op": "lt", "value": 100})

    assert result.error_kind == ErrorKind.ASSERTION
    assert result.error.startswith("latency: expected lt 100, got ")


def test_a_tcp_check_can_assert_on_its_latency(httpserver: HTTPServer) -> None:
    host, port = httpserver.host, httpserver.port

    fast = check(f"tcp://{host}:{port}", {"source": "latency", "op": "lt", "value": 5000}, kind="tcp")
    impossible = check(f"tcp://{host}:{port}", {"source": "latency", "op": "lt", "value": 0}, kind="tcp")

    assert fast.ok, fast.error
    assert impossible.error_kind == ErrorKind.ASSERTION


def test_a_pathological_pattern_runs_in_linear_time() -> None:
    # (a+)+$ against "aaaa…b" backtracks for ages in Python's re; RE2 does not.
    seen = Observation(body="a" * 50_000 + "b")
    started = time.monotonic()

    failure = failed_assertion([{"source": "body", "op": "matches", "value": "(a+)+$"}], seen)

    # No match (the text ends in b), found out at once instead of after 2^50 tries.
    assert failure.startswith('body: expected matches "(a+)+$", got "aaaa')
    assert time.monotonic() - started < 1.0


# --- validation ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("assertions, expected", [
    ([{"source": "smell", "op": "eq", "value": 1}], "[0].source"),
    ([{"source": "status", "op": "eq", "value": 200}, {"source": "status", "op": "resembles", "value": 1}],
     "[1].op"),
    ([{"source": "status", "op": "matches", "value": "2.."}], "[0].op"),
    ([{"source": "json", "property": "$.[[", "op": "eq", "value": 1}], "[0].property"),
    ([{"source": "json", "op": "eq", "value": 1}], "[0].property"),
    ([{"source": "body", "op": "matches", "value": "(unclosed"}], "[0].value"),
    ([{"source": "status", "op": "eq", "value": "200"}], "[0].value"),
    ([{"source": "latency", "op": "lt", "value": "fast"}], "[0].value"),
    ([{"source": "json", "property": "$.n", "op": "gt", "value": "ten"}], "[0].value"),
    ([{"source": "status", "op": "in", "value": []}], "[0].value"),
    ([{"source": "header", "op": "exists"}], "[0].property"),
    ([{"source": "body", "op": "contains"}], "[0].value"),
    ([{"source": "body", "op": "contains", "value": "x", "colour": "red"}], "[0].colour"),
    (["status == 200"], "[0].source"),
    ({"source": "status"}, "list"),
    ([{"source": "dns", "op": "eq", "value": "1.2.3.4"}], "[0].source"),  # an http check has no DNS answer
])
def test_it_refuses_a_bad_assertion_naming_its_index_and_field(api, assertions, expected) -> None:
    response = api.post(MONITORS, {"name": "m", "url": "https://example.com/", "assertions": assertions},
                        format="json")

    assert response.status_code == 400, response.data
    assert expected in " ".join(map(str, response.data["assertions"])), response.data
    assert not Monitor.objects.exists()


@pytest.mark.django_db
def test_it_stores_and_shows_valid_assertions(api) -> None:
    assertions = [{"source": "json", "property": "$.status", "op": "eq", "value": "ok"},
                  {"source": "tls_days", "op": "gt", "value": 7}]

    response = api.post(MONITORS, {"name": "m", "url": "https://example.com/", "assertions": assertions},
                        format="json")

    assert response.status_code == 201, response.data
    assert response.data["assertions"] == assertions
    assert json.loads(json.dumps(Monitor.objects.get().assertions)) == assertions


def test_malformed_assertions_from_the_wire_fail_the_check_without_an_internal_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("ok")

    not_a_list = run_check(CheckSpec(httpserver.url_for("/"), timeout=2, assertions={"source": "status"}))
    not_an_object = run_check(CheckSpec(httpserver.url_for("/"), timeout=2, assertions=["status == 200"]))
    unknown_op = check(httpserver.url_for("/"), {"source": "status", "op": "resembles", "value": 200})

    assert (not_a_list.error_kind, not_a_list.error) == (ErrorKind.ASSERTION, "assertions: not a list")
    assert (not_an_object.error_kind, not_an_object.error) == (ErrorKind.ASSERTION, "assertions[0]: not an object")
    assert unknown_op.error_kind == ErrorKind.ASSERTION
