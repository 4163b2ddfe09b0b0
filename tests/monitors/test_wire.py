"""The probe protocol: one definition that the model, the probe and ingest agree with."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from monitors import wire
from monitors.models import CheckResult, Monitor
from monitors.probes import CheckSpec, ProbeResult


def test_every_spec_field_is_a_check_spec_argument_and_a_monitor_column():
    # Adding a field to a check is one line in the protocol: these must follow.
    # All but `targets`: the probe node's own LOOPR_MONITOR_TARGETS, which a
    # message may never widen, so it is never on the wire.
    assert set(wire.SPEC_FIELDS) == {f.name for f in dataclasses.fields(CheckSpec)} - {"targets"}
    columns = {f.attname for f in Monitor._meta.concrete_fields}
    assert set(wire.SPEC_FIELDS) | {"interval"} <= columns


def test_a_parsed_result_is_keyed_by_the_result_tables_columns():
    assert set(wire.RESULT_FIELDS) <= {f.attname for f in CheckResult._meta.concrete_fields}


def test_a_probe_result_becomes_a_result_payload_that_ingest_accepts():
    started = datetime(2026, 1, 5, 12, 0, 1, tzinfo=timezone.utc)
    probe = ProbeResult(ok=True, error_kind="ok", error="", latency_ms=12.0, started_at=started, status_code=200)
    payload = wire.result_payload(7, "2026-01-05T12:00:00+00:00", 3.5, probe.to_dict())
    assert set(payload) == set(wire.ResultPayload.__annotations__) - {"impaired"}
    parsed = wire.parse_result(payload)
    assert parsed["monitor_id"] == 7 and parsed["checked_at"] == started and parsed["impaired"] is False


def test_a_check_without_a_url_or_with_non_object_headers_is_malformed():
    with pytest.raises(wire.MalformedCheck):
        wire.parse_check({"monitor": 1, "slot": "2026-01-05T12:00:00+00:00"})
    with pytest.raises(wire.MalformedCheck):
        wire.parse_check({"monitor": 1, "slot": "2026-01-05T12:00:00+00:00", "url": "http://x/", "headers": "x"})
