"""Retention: results older than LOOPR_RESULTS_RETENTION_DAYS are deleted in
short batches, never in one long transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from .models import CheckResult


def prune_results(now: datetime | None = None, batch_size: int = 5000, budget_seconds: float = 20.0) -> tuple[int, bool]:
    """Delete results past retention in short transactions.

    Returns (deleted, more_left) so the caller can re-enqueue itself instead
    of holding one long lock or one huge transaction.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.LOOPR_RESULTS_RETENTION_DAYS)
    deadline = timezone.now() + timedelta(seconds=budget_seconds)
    deleted = 0
    while True:
        ids = list(
            CheckResult.objects.filter(scheduled_at__lt=cutoff).order_by("scheduled_at").values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return deleted, False
        deleted += CheckResult.objects.filter(id__in=ids)._raw_delete(CheckResult.objects.db)
        if len(ids) < batch_size:
            return deleted, False
        if timezone.now() >= deadline:
            return deleted, True
