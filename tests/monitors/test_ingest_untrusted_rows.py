"""A compromised node cannot poison the data: each row of its report is
validated on its own, so a bad row is rejected and counted while the good
rows beside it are stored."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from monitors import ingest
from monitors.models import CheckResult
from tests.factories import MonitorFactory

pytestmark = pytest.mark.django_db


def row(target, at, /, **extra) -> dict:
    return {
        "monitor": target.pk, "slot": at.isoformat(), "started_at": at.isoformat(), "ok": True,
        "latency_ms": 12.5, "status_code": 200, "error_kind": "ok", "error": "", "tls_expires_at": None, **extra,
    }


BAD_ROWS = {
    "error_kind a list": ("error_kind", {"error_kind": ["ok"]}),
    # Missed records are the central's account of checks that never ran: a
    # node claiming one would turn a slot into "no data" at will.
    "a slot reported missed": ("error_kind", {"error_kind": "missed", "ok": False}),
    "error a list": ("error", {"error": ["boom"]}),
    "NaN latency": ("latency_ms", {"latency_ms": float("nan")}),
    "infinite latency": ("latency_ms", {"latency_ms": float("inf")}),
    "negative latency": ("latency_ms", {"latency_ms": -1}),
    "status_code true": ("status_code", {"status_code": True}),
    "status_code a float": ("status_code", {"status_code": 200.5}),
    "monitor true": ("monitor", {"monitor": True}),
    "monitor beyond bigint": ("monitor", {"monitor": 2**70}),
    "ok a number": ("ok", {"ok": 1}),
    "impaired a string": ("impaired", {"impaired": "yes"}),
    "year one with a negative offset": ("started_at", {"started_at": "0001-01-01T00:00:00-05:00"}),
    "month 13": ("slot", {"slot": "2026-13-01T00:00:00+00:00"}),
    "a slot in 1970": ("slot", {"slot": "1970-01-01T00:00:00+00:00"}),
    "a check from next week": ("started_at", {"started_at": (timezone.now() + timedelta(days=7)).isoformat()}),
    "a NUL in the time": ("slot", {"slot": "2026-01-05T12:00:00+00:00\x00"}),
    "a huge time string": ("slot", {"slot": "2026-01-05T12:00:00+00:00" + " " * 10_000}),
    "tls expiry a number": ("tls_expires_at", {"tls_expires_at": 5}),
}


@pytest.mark.parametrize("field,change", BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_a_bad_row_is_rejected_by_its_field_and_the_good_rows_are_stored(field, change):
    monitor = MonitorFactory()
    now = timezone.now().replace(microsecond=0)
    good = [row(monitor, now - timedelta(seconds=2)), row(monitor, now - timedelta(seconds=1))]
    outcome = ingest.ingest_results("local", "a@h", [good[0], row(monitor, now, **change), good[1]])
    # The bad row is counted by the field at fault; both good rows are stored.
    assert (outcome.stored, outcome.rejected, outcome.rejected_fields) == (2, 1, {field: 1})
    assert CheckResult.objects.filter(monitor=monitor).count() == 2


def test_nul_bytes_are_stripped_from_the_error_and_an_offset_beyond_postgresqls_is_stored_in_utc():
    monitor = MonitorFactory()
    slot = timezone.now().replace(microsecond=0)
    shifted = slot.astimezone(timezone.get_fixed_timezone(-20 * 60)).isoformat()
    outcome = ingest.ingest_results("local", "a@h", [row(monitor, slot, ok=False, error_kind="status",
                                                         error="bad\x00gateway", status_code=502, slot=shifted)])
    assert outcome.stored == 1
    stored = CheckResult.objects.get()
    assert stored.error == "badgateway" and stored.scheduled_at == slot


def test_a_stored_nan_latency_is_shown_as_null_instead_of_a_server_error(api, user):
    from monitors.models import Region

    monitor = MonitorFactory(owner=user)
    CheckResult.objects.create(monitor=monitor, region=Region.objects.get_or_create(name="local")[0],
                               scheduled_at=timezone.now(), checked_at=timezone.now(), ok=True,
                               latency_ms=float("nan"), error_kind="ok")
    response = api.get(f"/api/v1/monitors/{monitor.pk}/results/")
    assert response.status_code == 200
    assert response.json()["results"][0]["latency_ms"] is None


def test_a_message_of_many_bad_rows_is_one_bounded_log_line(caplog):
    monitor = MonitorFactory()
    huge = "9" * 30_000_000
    rows = [{"monitor": huge, "ok": True}] * 50 + [{"monitor": 1, "ok": True, "slot": huge}] * 50
    with caplog.at_level(logging.WARNING, logger="monitors.ingest"):
        outcome = ingest.ingest_results("local", "x" * 1_000_000, rows + [row(monitor, timezone.now())])
    assert (outcome.stored, outcome.rejected) == (1, 100)
    lines = [r.getMessage() for r in caplog.records if r.name == "monitors.ingest"]
    assert len(lines) == 1 and len(lines[0]) < 1000, [len(line) for line in lines]


def test_more_results_in_one_message_than_a_node_can_send_are_refused_beyond_the_cap():
    monitor = MonitorFactory()
    base = timezone.now().replace(microsecond=0) - timedelta(hours=3)
    rows = [row(monitor, base + timedelta(seconds=i)) for i in range(ingest.MAX_RESULTS_PER_MESSAGE + 10)]
    outcome = ingest.ingest_results("local", "a@h", rows)
    assert (outcome.stored, outcome.rejected) == (ingest.MAX_RESULTS_PER_MESSAGE, 10)

