from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .choices import ErrorKind, HttpMethod, MonitorStatus
from .validators import validate_expected_status, validate_headers, validate_target_url


class MonitorQuerySet(models.QuerySet):
    def owned_by(self, user) -> MonitorQuerySet:
        """The one place per-user visibility is decided (API, admin, later badges)."""
        if user.is_superuser:
            return self
        return self.filter(owner=user)


class Monitor(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="monitors")
    name = models.CharField(max_length=200)
    url = models.CharField(max_length=2000, validators=[validate_target_url])
    interval = models.PositiveIntegerField(default=60, help_text="Seconds between checks.")
    timeout = models.FloatField(default=10.0, help_text="Seconds a check may take in total.")
    method = models.CharField(max_length=8, choices=HttpMethod.choices, default=HttpMethod.GET)
    headers = models.JSONField(default=dict, blank=True, validators=[validate_headers])
    body = models.TextField(blank=True, max_length=65536)
    expected_status = models.CharField(max_length=200, default="200-399", validators=[validate_expected_status])
    keyword = models.CharField(max_length=500, blank=True)
    follow_redirects = models.BooleanField(default=True)
    regions = models.ManyToManyField(
        "workers.Region", blank=True, related_name="monitors",
        help_text="Regions that check it; none means every region with a live probe worker.",
    )
    retries = models.PositiveSmallIntegerField(
        default=1, help_text="Further consecutive failures that confirm an outage."
    )
    paused = models.BooleanField(default=False)

    status = models.CharField(max_length=16, choices=MonitorStatus.choices, default=MonitorStatus.PENDING)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(default=timezone.now)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # The newest slot whose result moved the status; older results arriving
    # late (another region, a redelivered batch) are stored but do not.
    last_slot_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MonitorQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            # The dispatcher's claim: unpaused monitors ordered by due time.
            models.Index(fields=["next_check_at"], condition=Q(paused=False), name="monitor_due_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if not settings.LOOPR_MIN_INTERVAL <= self.interval <= settings.LOOPR_MAX_INTERVAL:
            errors["interval"] = (
                f"Must be between {settings.LOOPR_MIN_INTERVAL} and {settings.LOOPR_MAX_INTERVAL} seconds."
            )
        if self.timeout is not None and self.interval is not None:
            if not 0 < self.timeout < self.interval:
                errors["timeout"] = "Must be above 0 and below the interval."
            elif self.timeout > settings.LOOPR_MAX_TIMEOUT:
                errors["timeout"] = f"Must be at most {settings.LOOPR_MAX_TIMEOUT} seconds."
        if errors:
            raise ValidationError(errors)

    @property
    def kind(self) -> str:
        return self.url.split("://", 1)[0]

    def pause(self) -> None:
        self.paused = True
        self._set_status(MonitorStatus.PAUSED)

    def resume(self) -> None:
        self.paused = False
        self.consecutive_failures = 0
        self.next_check_at = timezone.now()
        self._set_status(MonitorStatus.PENDING)

    def _set_status(self, status: str, when: datetime | None = None) -> bool:
        if self.status == status:
            return False
        self.status = status
        self.status_changed_at = when or timezone.now()
        return True

    def record_result(self, ok: bool, slot: datetime, checked_at: datetime) -> bool:
        """Move the status with one check's outcome; returns whether it changed.

        One failure is a suspicion, `retries` more in a row confirm it, so a
        single blip never pages anyone; a success clears it at once.
        """
        if self.last_checked_at is None or checked_at > self.last_checked_at:
            self.last_checked_at = checked_at
        if self.paused or (self.last_slot_at is not None and slot < self.last_slot_at):
            return False
        self.last_slot_at = slot
        if ok:
            self.consecutive_failures = 0
            return self._set_status(MonitorStatus.UP, checked_at)
        self.consecutive_failures += 1
        if self.consecutive_failures > self.retries:
            return self._set_status(MonitorStatus.DOWN, checked_at)
        return False

    def check_payload(self, slot: datetime) -> dict:
        """What a probe node needs to run one check: plain JSON, no database."""
        return {
            "monitor": self.pk,
            "slot": slot.isoformat(),
            "url": self.url,
            "timeout": self.timeout,
            "method": self.method,
            "headers": self.headers,
            "body": self.body,
            "expected_status": self.expected_status,
            "keyword": self.keyword,
            "follow_redirects": self.follow_redirects,
        }


class CheckResult(models.Model):
    """One check of one monitor from one region; the table grows without bound."""

    id = models.BigAutoField(primary_key=True)
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="results")
    region = models.ForeignKey("workers.Region", on_delete=models.PROTECT, related_name="+")
    node = models.CharField(max_length=200)
    scheduled_at = models.DateTimeField()
    checked_at = models.DateTimeField()
    ok = models.BooleanField()
    latency_ms = models.FloatField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_kind = models.CharField(max_length=16, choices=ErrorKind.choices, default=ErrorKind.OK)
    error = models.TextField(blank=True)
    tls_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # The natural key: a redelivered batch can never store a check twice.
            # Its (monitor, scheduled_at) prefix also serves "latest results of
            # one monitor", read backwards.
            models.UniqueConstraint(fields=["monitor", "scheduled_at", "region"], name="checkresult_natural_key"),
        ]
        indexes = [
            # Time-range queries across monitors and the retention sweep.
            models.Index(fields=["scheduled_at"], name="checkresult_scheduled_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.monitor_id}@{self.scheduled_at:%Y-%m-%d %H:%M:%S} {self.error_kind}"
