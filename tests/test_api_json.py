"""The API's JSON writer (orjson) writes DRF's document, byte for byte."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.utils.translation import gettext_lazy
from rest_framework import renderers
from rest_framework.utils.serializer_helpers import ReturnDict

from loopr.api import JSONRenderer

DOCUMENT = {
    "monitor": 7,
    "since": datetime(2026, 12, 5, 13, 0, tzinfo=dt_timezone.utc),
    "until": datetime(2026, 12, 6, 13, 0, 0, 123456, tzinfo=dt_timezone.utc),
    "local": datetime(2026, 12, 6, 14, 0, tzinfo=dt_timezone(timedelta(hours=1))),
    "day": date(2026, 12, 6),
    "at": time(4, 30),
    "took": timedelta(seconds=90),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "price": Decimal("1.50"),
    "label": gettext_lazy("Monitors"),
    "text": "line\u2028separator\u2029and ünïcode",
    "regions": {1: {"uptime_percent": 99.999, "latency_ms": {"p95": 12.345, "min": None}}},
    "tags": ("a", "b"),
    "ok": True,
    "nested": ReturnDict({"buckets": [{"checks": 2, "uptime_percent": 100.0, "downtime_seconds": 0.0}]},
                         serializer=None),
}


def test_the_api_writes_the_same_bytes_as_drfs_json_renderer():
    ours = JSONRenderer().render(DOCUMENT, "application/json", {})
    drf = renderers.JSONRenderer().render(DOCUMENT, "application/json", {})
    assert ours == drf
    assert b'"until":"2026-12-06T13:00:00.123456Z"' in ours and b"\\u2028" in ours


def test_indented_json_is_drfs_own():
    ours = JSONRenderer().render(DOCUMENT, "application/json; indent=2", {})
    assert ours == renderers.JSONRenderer().render(DOCUMENT, "application/json; indent=2", {})
    assert ours.startswith(b"{\n  ")


def test_no_data_is_an_empty_body():
    assert JSONRenderer().render(None) == b""
