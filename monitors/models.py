from __future__ import annotations

import secrets
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from urllib.parse import urlsplit

from cronsim import CronSim, CronSimError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from loopr.declarative import Declared
from loopr.querysets import TeamScopedQuerySet
from teams.models import TeamOwned

from .choices import (
    KIND_OF_SCHEME,
    AcknowledgedVia,
    ErrorKind,
    Event,
    Health,
    HttpMethod,
    MaintenanceKind,
    MissedReason,
    MonitorKind,
    MonitorStatus,
    PingKind,
    Resolution,
)
from .probes.assertions import ASSERTABLE_BY_KIND
from .quorum import Check, RegionReport, RegionVote
from .regions import Region  # noqa: F401  (a monitor is checked from regions)
from .validators import (
    validate_alert_days,
    validate_assertions,
    validate_expected_status,
    validate_headers,
    validate_target_url,
)
from .windows import validate_window, window_active_at


@dataclass(frozen=True)
class Transition:
    old: str
    new: str
    at: datetime
    kind: str = ""
    cause: str = ""
    region: str = ""


@dataclass(frozen=True)
class Announcement:
    event: Event
    # degraded, and the recovery from it, go only to channels that asked
    degraded_only: bool = False


class MonitorQuerySet(TeamScopedQuerySet):
    def silent(self) -> MonitorQuerySet:
        """Monitors whose alerts reach no one: not one enabled channel, and no escalation policy."""
        return self.exclude(channels__enabled=True).filter(escalation_policy__isnull=True)


def new_badge_token() -> str:
    """32 random bytes, URL-safe: a badge is found by this, never by the
    monitor's id, so badges cannot be enumerated (Uptime Kuma's badges by
    sequential id leaked every monitor's latency, GHSA-c7hf-c5p5-5g6h)."""
    return secrets.token_urlsafe(32)


def default_tls_alert_days() -> list[int]:
    return [30, 14, 7, 1]


# The order an operator reads monitors in: down first, then degraded, then
# the rest (by name after it). An expression, indexed as it is (the admin's
# default order), so that a page of 10,000 monitors is an index scan.
ATTENTION = models.Case(
    models.When(status=MonitorStatus.DOWN, then=models.Value(0)),
    models.When(status=MonitorStatus.DEGRADED, then=models.Value(1)),
    default=models.Value(2),
    output_field=models.SmallIntegerField(),
)


# TeamOwned before Declared: the team is filled before the slug, which is unique within it.
class Monitor(TeamOwned, Declared):
    # Who created it; the team it belongs to decides who sees it.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="monitors")
    name = models.CharField(max_length=200)
    # Empty on creation: taken from the URL's scheme (clients from before
    # kinds existed send none).
    kind = models.CharField(max_length=16, choices=MonitorKind.choices, blank=True,
                            help_text="http, tcp, dns, icmp or heartbeat; omitted: from the URL's scheme.")
    url = models.CharField(max_length=2000, blank=True, validators=[validate_target_url],
                           help_text="What is checked; none for a heartbeat, which is pinged instead.")
    interval = models.PositiveIntegerField(default=60, help_text="Seconds between checks.")
    timeout = models.FloatField(default=10.0, help_text="Seconds a check may take in total.")
    method = models.CharField(max_length=8, choices=HttpMethod.choices, default=HttpMethod.GET)
    headers = models.JSONField(default=dict, blank=True, validators=[validate_headers])
    body = models.TextField(blank=True, max_length=65536)
    expected_status = models.CharField(max_length=200, default="200-399", validators=[validate_expected_status])
    keyword = models.CharField(max_length=500, blank=True)
    follow_redirects = models.BooleanField(default=True)
    assertions = models.JSONField(
        default=list, blank=True, validators=[validate_assertions],
        help_text='Conditions that must all hold: [{"source", "property", "op", "value"}].',
    )
    tls_verify = models.BooleanField(
        default=True, help_text="Off: a self-signed or private-CA certificate is not a failure.")
    tls_expiry_alert_days = models.JSONField(
        default=default_tls_alert_days, blank=True, validators=[validate_alert_days],
        help_text="Alert once when the certificate comes within each of these many days of expiring; [] for never.",
    )
    # The certificate (known by its expiry) last alerted about, and the
    # lowest threshold it was alerted for: a renewed one starts afresh.
    tls_alerted_expiry = models.DateTimeField(null=True, blank=True)
    tls_alerted_days = models.PositiveSmallIntegerField(null=True, blank=True)
    # Heartbeats: the target pings /ping/<ping_uuid> every `interval` seconds
    # or on its cron `schedule`; `grace` more and it is late.
    grace = models.PositiveIntegerField(default=300, help_text="Heartbeat: seconds a ping may be late.")
    schedule = models.CharField(max_length=100, blank=True,
                                help_text="Heartbeat: cron expression of when pings are expected.")
    ping_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Public badges (/badge/<token>/…); rotated, the old one is a 404 at once.
    badge_token = models.CharField(max_length=64, unique=True, default=new_badge_token, editable=False)
    next_ping_due_at = models.DateTimeField(null=True, blank=True)
    # Runs begun with /start and not yet ended, {rid or "": ISO time}.
    run_starts = models.JSONField(default=dict, blank=True)
    regions = models.ManyToManyField(
        "workers.Region", blank=True, related_name="monitors",
        help_text="Regions that check it; none means every region with a live probe worker.",
    )
    retries = models.PositiveSmallIntegerField(
        default=1, help_text="Further consecutive failures that confirm an outage."
    )
    recovery_checks = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)],
        help_text="Consecutive successes that end an outage (more keeps a flapping target from alerting).",
    )
    latency_threshold_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Correct answers slower than this make the monitor degraded."
    )
    flap_threshold = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1)],
        help_text="More state changes than this within the flap window mark the monitor as flapping.",
    )
    flap_window = models.PositiveIntegerField(default=600, help_text="Seconds; see flap threshold.")
    quorum = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Regions that must see a failure for it to be down; empty: a majority of those that reported.",
    )
    channels = models.ManyToManyField("notifications.Channel", blank=True, related_name="monitors")
    # Instead of `channels` for an outage's down alert: who is told first, and who next while nobody acknowledges.
    escalation_policy = models.ForeignKey("notifications.EscalationPolicy", null=True, blank=True,
                                          on_delete=models.SET_NULL, related_name="monitors")
    paused = models.BooleanField(default=False)

    # What the monitor shows, derived from health, paused and in_maintenance.
    status = models.CharField(max_length=16, choices=MonitorStatus.choices, default=MonitorStatus.PENDING)
    health = models.CharField(max_length=16, choices=Health.choices, default=Health.PENDING)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # The health people were last told about: alerts held back by maintenance
    # or flapping go out when it ends, if the health still differs.
    alerted_health = models.CharField(max_length=16, choices=Health.choices, default=Health.PENDING)
    in_maintenance = models.BooleanField(default=False)
    is_flapping = models.BooleanField(default=False)
    next_check_at = models.DateTimeField(default=timezone.now)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # The newest slot whose result moved the status; older results arriving
    # late (another region, a redelivered batch) are stored but do not.
    last_slot_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    consecutive_successes = models.PositiveIntegerField(default=0)
    # The first failed check of the current failure streak: an incident
    # starts here, not when the retries confirmed it.
    failing_since = models.DateTimeField(null=True, blank=True)
    failure_kind = models.CharField(max_length=16, blank=True)
    failure_message = models.TextField(blank=True)
    failure_regions = models.JSONField(default=dict, blank=True)
    current_incident = models.ForeignKey(
        "Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Each region's latest result, {region: {slot, ok, kind, error, latency, impaired, at}}:
    # a slot's verdict is taken when every expected region reported it, or
    # at verdict_due_at with what is there.
    region_results = models.JSONField(default=dict, blank=True)
    verdict_due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Last: in the class body the name would hide django.utils.timezone above it.
    timezone = models.CharField(max_length=64, default="UTC", help_text="Heartbeat: the schedule's time zone.")

    objects = MonitorQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # A file's key for the object: one per team (loopr/declarative.py).
            # Rows bulk-inserted without one (not through save) have "" until a plan or an apply names them.
            models.UniqueConstraint(fields=["team", "slug"], condition=~Q(slug=""), name="monitor_team_slug"),
        ]
        indexes = [
            # The dispatcher's claim: unpaused probed monitors ordered by due
            # time. Heartbeats stay out: their next_check_at never moves, and
            # every tick would otherwise walk past all of them first.
            models.Index(fields=["next_check_at"], condition=Q(paused=False) & ~Q(kind=MonitorKind.HEARTBEAT),
                         name="monitor_due_idx"),
            # The verdict sweep: slots waiting for regions that have not reported.
            models.Index(fields=["verdict_due_at"], condition=Q(verdict_due_at__isnull=False),
                         name="monitor_verdict_due_idx"),
            # A page of a team's monitors in their order (the API's list) and
            # of everyone's (the admin's changelist), without sorting them all.
            models.Index(fields=["team", "name", "id"], name="monitor_team_name_idx"),
            models.Index(fields=["name", "id"], name="monitor_name_idx"),
            # The admin's changelist, down and degraded first, then by name.
            models.Index(ATTENTION, F("name"), F("id"), name="monitor_attention_idx"),
            # No index on next_ping_due_at: every steady ping moves it, and an
            # index on it would make that update write into all of the
            # table's indexes (not HOT). The late sweep reads HeartbeatDeadline.
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.fill_kind()
        super().save(*args, **kwargs)

    def fill_kind(self) -> None:
        """A monitor created without a kind takes its URL's (bulk creation
        calls this too: bulk_create does not go through save)."""
        if not self.kind:
            self.kind = self.inferred_kind() or ""

    def inferred_kind(self) -> str | None:
        if not self.url:
            return None
        try:
            return KIND_OF_SCHEME.get(urlsplit(self.url).scheme.lower())
        except ValueError:
            return None

    def clean(self) -> None:
        self.clean_kind()
        if self.kind == MonitorKind.HEARTBEAT:
            self.clean_heartbeat()
        else:
            self.clean_probed()
        self.clean_assertions_fit()

    def clean_kind(self) -> None:
        inferred = self.inferred_kind()
        if not self.kind:
            self.kind = inferred or ""
        if self.kind == MonitorKind.HEARTBEAT:
            if self.url:
                raise ValidationError({"url": "A heartbeat has no URL: its job pings Loopr's ping_url instead."})
            return
        if not self.url:
            raise ValidationError({"url": "This field is required (except for a heartbeat)."})
        if self.kind and inferred is not None and inferred != self.kind:
            schemes = [scheme for scheme, kind in KIND_OF_SCHEME.items() if kind == self.kind]
            raise ValidationError({"url": f"A {self.kind} monitor takes a {' or '.join(schemes)}:// URL."})

    def clean_heartbeat(self) -> None:
        try:
            zone = zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError({"timezone": f"Unknown time zone {self.timezone!r}."}) from exc
        if self.schedule:
            if len(self.schedule.split()) != 5:
                raise ValidationError({"schedule": "Use five fields: minute hour day-of-month month day-of-week."})
            try:
                next(CronSim(self.schedule, datetime.now(zone)))
            except (CronSimError, StopIteration) as exc:
                raise ValidationError({"schedule": f"Invalid cron expression: {exc}."}) from exc
        elif self.interval is not None:
            self.clean_interval()
        if self.grace is not None and self.grace > settings.LOOPR_MAX_INTERVAL:
            raise ValidationError({"grace": f"Must be at most {settings.LOOPR_MAX_INTERVAL} seconds."})

    def clean_probed(self) -> None:
        if self.schedule:
            raise ValidationError({"schedule": "Only a heartbeat has a cron schedule; checks use the interval."})
        if self.interval is None or self.timeout is None:
            return  # clean_fields names the missing one
        self.clean_interval()
        if not 0 < self.timeout < self.interval:
            raise ValidationError({"timeout": "Must be above 0 and below the interval."})
        if self.timeout > settings.LOOPR_MAX_TIMEOUT:
            raise ValidationError({"timeout": f"Must be at most {settings.LOOPR_MAX_TIMEOUT} seconds."})

    def clean_interval(self) -> None:
        low, high = settings.LOOPR_MIN_INTERVAL, settings.LOOPR_MAX_INTERVAL
        if not low <= self.interval <= high:
            # The timeout is measured against the interval: not against one out of bounds.
            raise ValidationError({"interval": f"Must be between {low} and {high} seconds."})

    def clean_assertions_fit(self) -> None:
        """Each assertion's source is one this kind of check sees."""
        fits = ASSERTABLE_BY_KIND.get(self.kind, ())
        for index, assertion in enumerate(self.assertions if isinstance(self.assertions, list) else []):
            if isinstance(assertion, dict) and assertion.get("source") not in fits:
                seen = f"only {', '.join(fits)}" if fits else "nothing to assert on"
                raise ValidationError({"assertions": f"[{index}].source: a {self.kind or 'monitor'} check has "
                                                     f"{seen}, not {assertion.get('source')!r}."})

    @staticmethod
    def default_schedule(interval: int | None, timeout: float | None) -> tuple[int, float]:
        """A new monitor's interval and timeout, where not given, within the
        limits in settings: a short interval gets a timeout that fits it."""
        if interval is None:
            interval = max(60, settings.LOOPR_MIN_INTERVAL)
        if timeout is None:
            timeout = min(10.0, interval / 2, float(settings.LOOPR_MAX_TIMEOUT))
        return interval, timeout

    def rotate_badge_token(self) -> str:
        self.badge_token = new_badge_token()
        self.save(update_fields=["badge_token", "updated_at"])
        return self.badge_token

    @property
    def is_heartbeat(self) -> bool:
        return self.kind == MonitorKind.HEARTBEAT

    def next_ping_due(self, after: datetime) -> datetime:
        """A heartbeat's deadline after a ping (or a missed deadline) at `after`:
        the next expected ping, by interval or the cron schedule in its time
        zone (DST-correct: cronsim walks local time), plus the grace."""
        grace = timedelta(seconds=self.grace)
        if not self.schedule:
            return after + timedelta(seconds=self.interval) + grace
        local = after.astimezone(zoneinfo.ZoneInfo(self.timezone))
        return next(CronSim(self.schedule, local)).astimezone(dt_timezone.utc) + grace

    def reschedule_pings(self) -> None:
        """A heartbeat whose schedule or grace changed: its deadline counts
        from its last success again, under the new rules."""
        if not self.is_heartbeat or self.next_ping_due_at is None or self.paused:
            return
        last = self.results.filter(ok=True).order_by("-scheduled_at").values_list("checked_at", flat=True).first()
        if last is not None:
            self.next_ping_due_at = self.next_ping_due(last)

    def tls_threshold_crossed(self, expires_at: datetime, now: datetime) -> int | None:
        """The alert threshold (days) this certificate just came within, if
        people were not told about it (or a lower one) yet; records it.

        A certificate first seen past several thresholds alerts once, for the
        lowest; a renewed one (another expiry) starts afresh."""
        if self.tls_alerted_expiry != expires_at:
            self.tls_alerted_expiry, self.tls_alerted_days = expires_at, None
        days_left = (expires_at - now).total_seconds() / 86400
        crossed = [days for days in self.tls_expiry_alert_days or () if days_left <= days]
        if not crossed:
            return None
        lowest = min(crossed)
        if self.tls_alerted_days is not None and self.tls_alerted_days <= lowest:
            return None
        self.tls_alerted_days = lowest
        return lowest

    @property
    def alerting(self) -> bool:
        """Whether an alert would reach anyone: an escalation policy, or at
        least one enabled channel."""
        return self.escalation_policy_id is not None or any(channel.enabled for channel in self.linked("channels"))

    def linked(self, name: str) -> list:
        """Its `regions` or `channels`: as `read_links` left them (a page of
        monitors reads them all at once), else through the manager (and so
        from prefetched ones when the queryset has them)."""
        links = self.__dict__.get("_links")
        return links[name] if links is not None else list(getattr(self, name).all())

    @classmethod
    def read_links(cls, monitors: list[Monitor]) -> None:
        """The regions (id, name) and channels (id, enabled) of those of
        `monitors` that lack them, one query each, kept for `linked`: a page
        of a hundred costs two queries and builds no queryset per monitor,
        which prefetch_related does (a third of a page's time)."""
        monitors = [monitor for monitor in monitors if "_links" not in monitor.__dict__]
        if not monitors:
            return
        channel_model = cls._meta.get_field("channels").related_model  # notifications builds on monitors, not back
        regions: dict[int, list[Region]] = {monitor.pk: [] for monitor in monitors}
        channels: dict[int, list[models.Model]] = {monitor.pk: [] for monitor in monitors}
        rows = cls.regions.through.objects.filter(monitor_id__in=regions).order_by("region__name")
        for monitor_id, region_id, name in rows.values_list("monitor_id", "region_id", "region__name"):
            regions[monitor_id].append(Region(id=region_id, name=name))
        rows = cls.channels.through.objects.filter(monitor_id__in=channels).order_by("channel__name", "channel_id")
        for monitor_id, channel_id, enabled in rows.values_list("monitor_id", "channel_id", "channel__enabled"):
            channels[monitor_id].append(channel_model(id=channel_id, enabled=enabled))
        for monitor in monitors:
            monitor.set_links(regions[monitor.pk], channels[monitor.pk])

    def set_links(self, regions: list, channels: list) -> None:
        self._links = {"regions": regions, "channels": channels}

    def pause(self) -> None:
        self.paused = True
        self.refresh_status()

    def resume(self) -> None:
        self.paused = False
        self.consecutive_failures = self.consecutive_successes = 0
        self.health = Health.PENDING
        self.next_check_at = timezone.now()
        self.next_ping_due_at = None  # a heartbeat waits for its first ping again
        self.refresh_status()

    def refresh_status(self, when: datetime | None = None) -> None:
        status = (
            MonitorStatus.PAUSED if self.paused
            else MonitorStatus.MAINTENANCE if self.in_maintenance
            else self.health
        )
        if status != self.status:
            self.status = status
            self.status_changed_at = when or timezone.now()

    def apply_check(self, check: Check) -> Transition | None:
        """Move the health with one check's outcome; returns the transition, if any.

        One failure is a suspicion, `retries` more in a row confirm it, so a
        single blip never pages anyone; `recovery_checks` successes in a row
        end an outage, so a flapping target does not alert on every flip.
        """
        self.note_checked_at(check.checked_at)
        if self.paused or (self.last_slot_at is not None and check.slot < self.last_slot_at):
            return None
        self.last_slot_at = check.slot
        old, new = self.health, self._verdict(check)
        if new == old:
            return None
        self.health = new
        self.refresh_status(check.checked_at)
        self.status_changed_at = check.checked_at
        return Transition(old=old, new=new, at=check.checked_at, kind=self.failure_kind,
                          cause=self._cause(new, check), region=check.region)

    def _verdict(self, check: Check) -> str:
        if check.ok:
            self.consecutive_failures = 0
            self.consecutive_successes += 1
            if self.health == Health.DOWN and self.consecutive_successes < self.recovery_checks:
                return Health.DOWN
            self.failing_since = None
            return Health.DEGRADED if check.failing_regions or self.is_slow(check.latency_ms) else Health.UP
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        if self.consecutive_failures == 1 and self.health != Health.DOWN:
            self.failing_since = check.checked_at
            self.failure_kind, self.failure_message = check.error_kind, check.error
            self.failure_regions = dict(check.region_errors or {})
        if self.consecutive_failures > self.retries:
            return Health.DOWN
        return self.health

    def is_slow(self, latency_ms: float | None) -> bool:
        return self.latency_threshold_ms is not None and latency_ms is not None and latency_ms > self.latency_threshold_ms

    def _cause(self, new: str, check: Check) -> str:
        if new == Health.DOWN:
            return self.failure_message
        if new == Health.DEGRADED and check.failing_regions:
            return f"failing in {', '.join(check.failing_regions)} only: {check.error}"
        if new == Health.DEGRADED:
            return f"latency {check.latency_ms:.0f} ms above the {self.latency_threshold_ms} ms threshold"
        return ""

    def note_checked_at(self, at: datetime) -> None:
        if self.last_checked_at is None or at > self.last_checked_at:
            self.last_checked_at = at

    def note_region_result(self, region: str, slot: datetime, checked_at: datetime, ok: bool, kind: str,
                           error: str, latency_ms: float | None, impaired: bool) -> None:
        current = self.region_results.get(region)
        if current and datetime.fromisoformat(current["slot"]) > slot:
            return  # a late result of an older slot
        report: RegionReport = {
            "slot": slot.isoformat(), "at": checked_at.isoformat(), "ok": ok, "kind": kind,
            "error": error[:500], "latency": latency_ms, "impaired": impaired,
        }
        self.region_results[region] = report

    def verdict(self, expected: set[str], now: datetime, grace: float, force: bool = False) -> Check | None:
        """The regions' vote on the newest undecided slot, once every expected
        region reported it (or its deadline passed); None while waiting."""
        slot, reporting = self.undecided_slot()
        if slot is None:
            self.verdict_due_at = None
            return None
        deadline = slot + timedelta(seconds=self.timeout + grace)
        if not force and not expected <= set(reporting) and now < deadline:
            self.verdict_due_at = deadline
            return None
        self.verdict_due_at = None
        check = RegionVote(slot, reporting, self.quorum).verdict()
        if check is None:
            self.last_slot_at = slot  # nothing to judge this slot by: move on
        return check

    def undecided_slot(self) -> tuple[datetime | None, dict[str, RegionReport]]:
        """The newest slot after the last judged one, and the regions' reports of it."""
        slots = {r: datetime.fromisoformat(e["slot"]) for r, e in self.region_results.items()}
        newer = [s for s in slots.values() if self.last_slot_at is None or s > self.last_slot_at]
        if not newer:
            return None, {}
        slot = max(newer)
        return slot, {r: self.region_results[r] for r, s in slots.items() if s == slot}

    def unserved_regions(self, live: set[str]) -> list[str]:
        """Chosen regions that no live probe node serves: not checked at all."""
        return sorted(r.name for r in self.linked("regions") if r.name not in live)

    def settle_flapping(self, now: datetime) -> bool:
        """A flapping monitor settles once its health held still for a whole window."""
        if self.is_flapping and (self.status_changed_at is None
                                 or (now - self.status_changed_at).total_seconds() >= self.flap_window):
            self.is_flapping = False
            return True
        return False

    def announcement(self) -> Announcement | None:
        """What people must be told now, if anything, and mark it told.

        Held back while paused, in maintenance or flapping; whatever differs
        from the last announcement when that ends is announced then.
        """
        if self.paused or self.in_maintenance or self.is_flapping:
            return None
        health, told = self.health, self.alerted_health
        if health == told or health == Health.PENDING:
            return None
        self.alerted_health = health
        if health == Health.DOWN:
            return Announcement(Event.DOWN)
        if told == Health.DOWN:
            return Announcement(Event.UP)
        if health == Health.DEGRADED:
            return Announcement(Event.DEGRADED, degraded_only=True)
        if told == Health.DEGRADED:
            return Announcement(Event.UP, degraded_only=True)
        return None  # pending -> up: nothing worth a message


class CheckResultQuerySet(TeamScopedQuerySet):
    team_path = "monitor__team"


class CheckResult(models.Model):
    """One check of one monitor from one region; the table grows without bound.

    On PostgreSQL it is partitioned by day on `scheduled_at` (monitors/partitions.py):
    retention drops whole days. Its key is the natural key; `id` is kept for the
    admin's links and the API but has no index of its own (nothing reads by it
    on the hot path; a BRIN index keeps the admin's look-up by id cheap).
    """

    id = models.BigAutoField(primary_key=True)
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="results")
    region = models.ForeignKey("workers.Region", on_delete=models.PROTECT, related_name="+")
    # The probe node, by id: its name on every row was the widest column.
    # No constraint: a node's row may be deleted while its results stay.
    node = models.ForeignKey("workers.WorkerNode", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    scheduled_at = models.DateTimeField()
    checked_at = models.DateTimeField()
    # Null for a missed slot (error_kind "missed"): no check ran, so neither up nor down.
    ok = models.BooleanField(null=True)
    latency_ms = models.FloatField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_kind = models.CharField(max_length=16, choices=ErrorKind.choices, default=ErrorKind.OK)
    error = models.TextField(blank=True)
    tls_expires_at = models.DateTimeField(null=True, blank=True)
    in_maintenance = models.BooleanField(default=False)
    # From a node whose canary failed: stored, but not counted in verdicts.
    impaired = models.BooleanField(default=False)
    missed_reason = models.CharField(max_length=16, choices=MissedReason.choices, blank=True, db_default="")
    # A missed record's last slot: it may stand for a run of slots,
    # scheduled_at to this one (same interval), so a day without dispatch
    # writes one row per monitor and region, not one per slot. Equal to
    # scheduled_at for a single slot; null on a result.
    missed_until = models.DateTimeField(null=True, blank=True)

    objects = CheckResultQuerySet.as_manager()

    class Meta:
        constraints = [
            # The natural key, and the table's primary key on PostgreSQL: a
            # redelivered batch can never store a check twice. Region before
            # the time keeps each (monitor, region)'s entries ascending, so
            # its index pages fill instead of splitting in halves. It also
            # serves a monitor's results in a time range (per region, merged).
            models.UniqueConstraint(fields=["monitor", "region", "scheduled_at"], name="checkresult_natural_key"),
        ]
        indexes = [
            # "A monitor's failures in a range" (results/?ok=false&since=…):
            # about 2 % of the rows, so a partial index is small.
            models.Index(fields=["monitor", "scheduled_at"], condition=Q(ok=False), name="checkresult_failed_idx"),
            # Extending a run of missed slots: find the run of (monitor, region)
            # that ends where the next missed slot begins. Missed rows only, so tiny.
            models.Index(fields=["monitor", "region", "missed_until"], condition=Q(error_kind="missed"),
                         name="checkresult_missed_run_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.monitor_id}@{self.scheduled_at:%Y-%m-%d %H:%M:%S} {self.error_kind}"


class PingQuerySet(TeamScopedQuerySet):
    team_path = "monitor__team"


class Ping(models.Model):
    """One ping a heartbeat received, with what it carried. Its outcome (a
    success or a failure) is also a CheckResult; starts and logs are only here."""

    id = models.BigAutoField(primary_key=True)
    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="pings")
    at = models.DateTimeField()
    kind = models.CharField(max_length=8, choices=PingKind.choices)
    exit_status = models.PositiveSmallIntegerField(null=True, blank=True)
    rid = models.UUIDField(null=True, blank=True, help_text="Pairs the start and end of one run.")
    duration_ms = models.FloatField(null=True, blank=True, help_text="Since the run's /start, if there was one.")
    method = models.CharField(max_length=8)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True, help_text="The request body, up to 10 kB.")

    objects = PingQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # A monitor's pings, newest first (the API), and the retention sweep.
            models.Index(fields=["monitor", "-at"], name="ping_monitor_at_idx"),
            models.Index(fields=["at"], name="ping_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.monitor_id} {self.kind} at {self.at:%Y-%m-%d %H:%M:%S}"


class HeartbeatDeadline(models.Model):
    """An unpaused heartbeat's deadline (Monitor.next_ping_due_at), one row
    per heartbeat that has one, kept by database triggers on the monitor
    table (migration 0015): whatever writes the monitor — a ping's one
    statement, the state machine, an API edit, a bulk pause — moves this
    row with it. A narrow table of its own so that its index (the late
    sweep's) is the only one a ping's new deadline writes into; the
    monitor's own update touches no indexed column and stays HOT."""

    monitor = models.OneToOneField(Monitor, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False,
                                   related_name="+")
    due_at = models.DateTimeField()

    class Meta:
        indexes = [
            # The late-heartbeat sweep: deadlines that passed, earliest first.
            models.Index(fields=["due_at"], name="heartbeat_due_idx"),
        ]


class Rollup(models.Model):
    """One monitor's results in one hour or day (monitors/rollups.py): per
    region, and with `region` empty for the monitor's all-regions verdict.

    Counts and sums add up across buckets, and so does the latency histogram
    (fixed log-spaced buckets, see `rollups.bucket_of`): p50/p95/p99 of any
    window and any set of regions come from summing histograms.
    """

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="rollups")
    # Empty: the monitor's verdict over all its regions.
    region = models.ForeignKey("workers.Region", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    resolution = models.CharField(max_length=6, choices=Resolution.choices)
    start = models.DateTimeField()
    checks = models.PositiveIntegerField(default=0, help_text="Results that ran (missed slots are not checks).")
    failed_checks = models.PositiveIntegerField(default=0)
    maintenance_checks = models.PositiveIntegerField(default=0)
    degraded_checks = models.PositiveIntegerField(default=0, help_text="Correct but slower than the threshold.")
    missed_checks = models.PositiveIntegerField(default=0)
    # Time with data outside maintenance, and the part of it that was down:
    # uptime is 1 - down / covered; time with no data is neither.
    covered_seconds = models.FloatField(default=0)
    down_seconds = models.FloatField(default=0)
    latency_count = models.PositiveIntegerField(default=0)
    latency_sum = models.FloatField(default=0)
    latency_min = models.FloatField(null=True, blank=True)
    latency_max = models.FloatField(null=True, blank=True)
    # Successful checks' latency per bucket, packed (rollups.pack_histogram).
    histogram = models.BinaryField(default=b"")

    class Meta:
        indexes = [
            # A monitor's buckets of one size in a range (uptime, series, the monitor list).
            models.Index(fields=["monitor", "resolution", "start"], name="rollup_monitor_idx"),
            # Retention: the oldest buckets of one size.
            models.Index(fields=["resolution", "start"], name="rollup_start_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.monitor_id} {self.resolution} {self.start:%Y-%m-%d %H:%M} {self.region_id or 'all'}"


class MonitorSummary(models.Model):
    """What the monitor lists show of a monitor, summed from its rollups up
    to `rolled_up_to` (rollups.refresh_summaries, after each roll-up): the
    rolled-up part of its 24-hour and 30-day spans and of its 24-hour
    sparkline. A page of monitors then reads one row each, plus the raw
    results since the last roll-up; a row for an older roll-up is not used."""

    monitor = models.OneToOneField(Monitor, primary_key=True, on_delete=models.CASCADE, related_name="+")
    rolled_up_to = models.DateTimeField()
    # The hours [rolled_up_to - 23 h, rolled_up_to): the 24-hour span but for its open hour.
    day_covered_seconds = models.FloatField(default=0)
    day_down_seconds = models.FloatField(default=0)
    day_latency_count = models.PositiveIntegerField(default=0)
    day_latency_sum = models.FloatField(default=0)
    day_latency_min = models.FloatField(null=True, blank=True)
    day_latency_max = models.FloatField(null=True, blank=True)
    day_histogram = models.BinaryField(default=b"")
    # The 30 days: whole days from the day rollups, then the hours of rolled_up_to's day.
    month_covered_seconds = models.FloatField(default=0)
    month_down_seconds = models.FloatField(default=0)
    # Per hour of the 23, oldest first: [average latency ms, covered s, down s] or null (no data).
    hours = models.JSONField(default=list)
    # The same for the hour after rolled_up_to's, read until that hour is
    # rolled up too (the two minutes and more after each hour turns, and
    # while the roll-up writes these rows): the 24-hour span's hours
    # [rolled_up_to - 22 h, rolled_up_to) and the 30 days of that hour's day
    # (the hours are the last 22 of `hours`). Null: not summed (a row
    # written before these columns): the list sums that monitor's rollups.
    next_day_covered_seconds = models.FloatField(null=True, blank=True)
    next_day_down_seconds = models.FloatField(null=True, blank=True)
    next_day_latency_count = models.PositiveIntegerField(null=True, blank=True)
    next_day_latency_sum = models.FloatField(null=True, blank=True)
    next_day_latency_min = models.FloatField(null=True, blank=True)
    next_day_latency_max = models.FloatField(null=True, blank=True)
    next_day_histogram = models.BinaryField(null=True, blank=True)
    next_month_covered_seconds = models.FloatField(null=True, blank=True)
    next_month_down_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "monitor summaries"

    def __str__(self) -> str:
        return f"{self.monitor_id} to {self.rolled_up_to:%Y-%m-%d %H:%M}"


class RollupProgress(models.Model):
    """Where rolling up stands (one row): hours before `rolled_up_to` are in
    rollups; results inserted after `seen_id` may be late ones for them."""

    rolled_up_to = models.DateTimeField(null=True, blank=True)
    seen_id = models.BigIntegerField(default=0)
    # The scan of late results reaches one run back: an insert whose id is
    # below seen_id may commit just after a run read past it.
    previous_seen_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "rollup progress"


class IncidentQuerySet(TeamScopedQuerySet):
    team_path = "monitor__team"

    def open(self) -> IncidentQuerySet:
        return self.filter(resolved_at__isnull=True)


class Incident(models.Model):
    """One outage of one monitor, from its first failed check to recovery."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="incidents")
    started_at = models.DateTimeField(help_text="The first failed check, not the confirmation.")
    confirmed_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    cause_kind = models.CharField(max_length=16, choices=ErrorKind.choices, blank=True)
    cause = models.TextField(blank=True)
    regions = models.JSONField(default=list, blank=True, help_text="Regions that saw the failure.")
    region_errors = models.JSONField(default=dict, blank=True, help_text="Each failing region's error.")
    # Someone is on it: reminders and escalation stop; recovery still announces `up`.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=200, blank=True, help_text="A username, or the channel a link went to.")
    acknowledged_via = models.CharField(max_length=8, choices=AcknowledgedVia.choices, blank=True)
    acknowledgement_note = models.CharField(max_length=1000, blank=True)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            # A monitor's incidents, newest first (API filter, admin inline).
            models.Index(fields=["monitor", "-started_at"], name="incident_monitor_idx"),
            # The open ones, oldest first (the admin's dashboard), however many resolved ones there are.
            models.Index(fields=["started_at"], condition=Q(resolved_at__isnull=True), name="incident_open_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.monitor} since {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def is_acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def acknowledgeable(self) -> bool:
        return self.is_open and not self.is_acknowledged

    def record_acknowledgement(self, by: str, via: str, note: str, at: datetime) -> None:
        self.acknowledged_at, self.acknowledged_by = at, by[:200]
        self.acknowledged_via, self.acknowledgement_note = via, note[:1000]
        self.save(update_fields=["acknowledged_at", "acknowledged_by", "acknowledged_via", "acknowledgement_note"])

    @property
    def duration(self) -> timedelta:
        return (self.resolved_at or timezone.now()) - self.started_at


class StatusChange(models.Model):
    """Every health transition, kept as the timeline of incidents and for flap detection."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="status_changes")
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes")
    old = models.CharField(max_length=16, choices=Health.choices)
    new = models.CharField(max_length=16, choices=Health.choices)
    at = models.DateTimeField()
    cause = models.TextField(blank=True)
    region = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            # Flap detection counts one monitor's changes in a recent window.
            models.Index(fields=["monitor", "at"], name="statuschange_monitor_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.old} → {self.new} at {self.at:%H:%M:%S}"


class MaintenanceWindowQuerySet(TeamScopedQuerySet):
    pass


class MaintenanceWindow(TeamOwned, Declared):
    """While active, checks of its monitors still run and are stored, the
    monitors show `maintenance`, and no down/up alert goes out."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="maintenance_windows")
    name = models.CharField(max_length=200)
    monitors = models.ManyToManyField(Monitor, related_name="maintenance_windows")
    kind = models.CharField(max_length=8, choices=MaintenanceKind.choices, default=MaintenanceKind.ONCE)
    starts_at = models.DateTimeField(null=True, blank=True, help_text="One-off: start.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="One-off: end.")
    weekdays = models.JSONField(default=list, blank=True, help_text="Weekly: days, 0 = Monday … 6 = Sunday.")
    start_time = models.TimeField(null=True, blank=True, help_text="Weekly: local start time.")
    cron = models.CharField(max_length=100, blank=True, help_text="Cron: 'minute hour day month weekday' starts.")
    duration_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="Weekly and cron: length.")
    timezone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MaintenanceWindowQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # A file's key for the object: one per team (loopr/declarative.py).
            # Rows bulk-inserted without one (not through save) have "" until a plan or an apply names them.
            models.UniqueConstraint(fields=["team", "slug"], condition=~Q(slug=""), name="maintenancewindow_team_slug"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        validate_window(self)

    def active_at(self, at: datetime) -> bool:
        return window_active_at(self, at)
