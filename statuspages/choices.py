from __future__ import annotations

from collections.abc import Iterable

from django.db import models

from monitors.choices import MonitorStatus


class PageStatus(models.TextChoices):
    """A status page's overall word, from its components' statuses."""

    OPERATIONAL = "operational", "All systems operational"
    DEGRADED = "degraded", "Degraded performance"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"
    MAINTENANCE = "maintenance", "Under maintenance"

    @classmethod
    def of(cls, statuses: Iterable[str]) -> PageStatus:
        """Every component down is a major outage, some a partial one; any
        degraded is degraded; maintenance only when nothing is wrong. Paused
        and pending components say nothing either way."""
        counted = [s for s in statuses if s not in (MonitorStatus.PAUSED, MonitorStatus.PENDING)]
        down = counted.count(MonitorStatus.DOWN)
        if down and down == len(counted):
            return cls.MAJOR_OUTAGE
        if down:
            return cls.PARTIAL_OUTAGE
        if MonitorStatus.DEGRADED in counted:
            return cls.DEGRADED
        if MonitorStatus.MAINTENANCE in counted:
            return cls.MAINTENANCE
        return cls.OPERATIONAL


class ReportStatus(models.TextChoices):
    """Where an operator's notice stands (Atlassian Statuspage's words)."""

    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
