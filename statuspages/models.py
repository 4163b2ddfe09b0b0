"""Public status pages: which monitors a page shows and how, and the notices
people write on it. What the public sees of them is built in snapshot.py."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from loopr.querysets import TeamScopedQuerySet
from monitors.models import Monitor
from teams.models import TeamOwned

from .choices import ReportStatus


class StatusPageQuerySet(TeamScopedQuerySet):
    pass


class StatusPage(TeamOwned):
    """A page of a team's monitors for the public; its team's members preview it before it is public."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="status_pages", help_text="Who created it.")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True, help_text="The page's address: /status/<slug>/.")
    public = models.BooleanField(default=False, help_text="Off: a 404 for everyone but its owner (a preview).")
    description = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    # Moves whenever the page, its components or its notices change: the
    # public snapshot is rebuilt when it differs (snapshot.py).
    updated_at = models.DateTimeField(auto_now=True)

    objects = StatusPageQuerySet.as_manager()
    # Edited with the page (API and admin alike): their changes are in its audit entries.
    audited_parts = ("components",)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def touch(self) -> None:
        StatusPage.objects.filter(pk=self.pk).update(updated_at=timezone.now())

    def set_components(self, components: list[dict]) -> None:
        """Replace the components by these, in this order: [{monitor, name, group, show_error_message}]."""
        self.components.all().delete()
        Component.objects.bulk_create([
            Component(page=self, position=index, monitor_id=item["monitor"].pk,
                      name=item.get("name") or item["monitor"].name, group=item.get("group", ""),
                      show_error_message=item.get("show_error_message", False))
            for index, item in enumerate(components)
        ])
        self.touch()


class Component(models.Model):
    """One monitor shown on a page, under a display name and an optional group.
    Deleting the monitor takes it off the page; the rest stays."""

    page = models.ForeignKey(StatusPage, on_delete=models.CASCADE, related_name="components")
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="status_page_components")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=200, help_text="What visitors read instead of the monitor's own name.")
    group = models.CharField(max_length=100, blank=True)
    # Error messages can name internal hosts: visitors see the error kind only, unless the owner says so.
    show_error_message = models.BooleanField(default=False)

    class Meta:
        ordering = ["page", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["page", "monitor"], name="component_monitor_once_per_page")]

    def __str__(self) -> str:
        return self.name


class StatusReportQuerySet(TeamScopedQuerySet):
    team_path = "page__team"

    def shown(self, since: datetime) -> StatusReportQuerySet:
        """Open, or resolved since `since`."""
        return self.filter(models.Q(resolved_at__isnull=True) | models.Q(resolved_at__gte=since))


class StatusReport(models.Model):
    """A notice written by people: what is wrong, what is being done, updated as it goes."""

    page = models.ForeignKey(StatusPage, on_delete=models.CASCADE, related_name="reports")
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.INVESTIGATING)
    monitors = models.ManyToManyField(Monitor, blank=True, related_name="+",
                                      help_text="The affected components (monitors on the page).")
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    objects = StatusReportQuerySet.as_manager()
    # Its timeline: an update posted is in the report's audit entry.
    audited_parts = ("updates",)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # A page's open and recent notices (the public snapshot), newest first.
            models.Index(fields=["page", "-created_at"], name="statusreport_page_idx"),
        ]

    def __str__(self) -> str:
        return self.title

    def post(self, status: str, message: str, at: datetime | None = None) -> StatusReportUpdate:
        """A timestamped update; the notice takes its status (resolved ends it, any other reopens it)."""
        update = self.updates.create(status=status, message=message, at=at or timezone.now())
        self.follow(update)
        return update

    def follow(self, update: StatusReportUpdate) -> None:
        self.status = update.status
        self.resolved_at = update.at if update.status == ReportStatus.RESOLVED else None
        self.save(update_fields=["status", "resolved_at"])
        self.page.touch()


class StatusReportUpdate(models.Model):
    report = models.ForeignKey(StatusReport, on_delete=models.CASCADE, related_name="updates")
    status = models.CharField(max_length=16, choices=ReportStatus.choices)
    message = models.TextField(max_length=10000)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_status_display()} at {self.at:%Y-%m-%d %H:%M}"
