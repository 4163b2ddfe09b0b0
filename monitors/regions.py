"""Regions: the places checks run from, and which of them are live.

The fleet (`workers`) owns the probe nodes that serve a region and keeps
`last_seen_at` current from their heartbeats; monitors are checked from
regions and judged by the live ones, so the model lives at the bottom, here,
where both can import it. It keeps its `workers` app label: its table, admin
pages, permissions and migrations are where they have always been.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def live_cutoff():
    # Three missed heartbeats and a node (and with it maybe its region) is gone.
    return timezone.now() - timedelta(seconds=3 * settings.LOOPR_HEARTBEAT_INTERVAL)


class RegionQuerySet(models.QuerySet):
    def live(self) -> RegionQuerySet:
        """Regions with a node that takes work and sent a heartbeat lately."""
        return self.filter(last_seen_at__gte=live_cutoff())


class Region(models.Model):
    """A place checks run from; its queue is `probe.<name>`."""

    name = models.SlugField(max_length=64, unique=True)
    label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Latest heartbeat of any of its nodes; kept here so that "which regions
    # are live" is one indexed read for every dispatch tick.
    last_seen_at = models.DateTimeField(null=True, blank=True)

    objects = RegionQuerySet.as_manager()

    class Meta:
        app_label = "workers"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return queue_for(self.name)

    @property
    def is_live(self) -> bool:
        return self.last_seen_at is not None and self.last_seen_at >= live_cutoff()


def queue_for(region_name: str) -> str:
    return f"probe.{region_name}"
