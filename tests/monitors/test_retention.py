"""Results past retention are pruned in bounded batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitors import ingest, retention
from monitors.models import CheckResult
from tests.factories import MonitorFactory
from tests.monitors.test_ingest import result

pytestmark = pytest.mark.django_db


def test_pruning_deletes_only_results_past_retention_in_bounded_batches(settings):
    settings.LOOPR_RESULTS_RETENTION_DAYS = 90
    monitor = MonitorFactory()
    now = timezone.now()
    old = [result(monitor, now - timedelta(days=91, minutes=i)) for i in range(25)]
    fresh = [result(monitor, now - timedelta(days=89, minutes=i)) for i in range(5)]
    ingest.ingest_results("local", "a@h", old + fresh)
    deleted, more = retention.prune_results(batch_size=10)
    assert (deleted, more) == (25, False)
    assert CheckResult.objects.count() == 5


def test_pruning_stops_at_its_time_budget_and_says_more_is_left(settings):
    settings.LOOPR_RESULTS_RETENTION_DAYS = 1
    monitor = MonitorFactory()
    now = timezone.now()
    ingest.ingest_results("local", "a@h", [result(monitor, now - timedelta(days=2, minutes=i)) for i in range(30)])
    deleted, more = retention.prune_results(batch_size=10, budget_seconds=0)
    assert (deleted, more) == (10, True)
