from __future__ import annotations

import random
import uuid
import zoneinfo
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from loopr.declarative import Declared
from loopr.querysets import TeamScopedQuerySet
from teams.models import TeamOwned

from .choices import AttemptOutcome, ChannelKind, DeliveryStatus, Event


# What a channel may choose to receive (tests always go: they are asked for).
FILTERABLE_EVENTS = [e for e in Event.values if e != Event.TEST]


class ChannelQuerySet(TeamScopedQuerySet):
    def defaults_for(self, team) -> ChannelQuerySet:
        """The channels a team's new monitor starts with, unless told otherwise."""
        return self.filter(team=team, is_default=True)


class Channel(TeamOwned, Declared):
    """Somewhere alerts go: an email address or a webhook URL of some kind."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="channels")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    target = models.CharField(max_length=2000, help_text="Where alerts go, as the kind reads it: the email address, "
                              "the webhook URL, the routing key, the chat or room id (see the README's table).")
    # Webhooks: the Standard Webhooks signing secret (whsec_…), shown once, on
    # creation or rotation. Other kinds: the user's token or key, never shown.
    secret = models.CharField(max_length=500, blank=True)
    config = models.JSONField(default=dict, blank=True, help_text="The kind's options (see the README's table).")
    is_default = models.BooleanField(default=False, help_text="Subscribed to the team's new monitors.")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    notify_degraded = models.BooleanField(default=False, help_text="Also alert when a monitor is degraded.")
    reminder_interval = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds between reminders while a monitor stays down; empty for none."
    )
    events = models.JSONField(default=list, blank=True,
                              help_text='Only these events, e.g. ["down", "up"]; empty: all of them.')
    # Quiet hours: everything but `down` waits until they end (down always goes).
    quiet_hours_start = models.TimeField(null=True, blank=True, help_text="Local time quiet hours begin.")
    quiet_hours_end = models.TimeField(null=True, blank=True, help_text="Local time quiet hours end.")
    quiet_hours_timezone = models.CharField(max_length=64, default="UTC", blank=True,
                                            help_text="Time zone of the quiet hours (empty: UTC).")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # A file's key for the object: one per team (loopr/declarative.py).
            # Rows bulk-inserted without one (not through save) have "" until a plan or an apply names them.
            models.UniqueConstraint(fields=["team", "slug"], condition=~models.Q(slug=""), name="channel_team_slug"),
        ]
        indexes = [
            # The reminder sweep, every 30 s: does any enabled channel want
            # reminders at all (usually none, and then that is all it asks).
            models.Index(fields=["id"], condition=models.Q(enabled=True, reminder_interval__isnull=False),
                         name="channel_reminding_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def clean(self) -> None:
        if self.kind_changed():
            raise ValidationError({"kind": "A channel's kind cannot change; create a new channel instead."})
        if self.kind in ChannelKind.values:  # else clean_fields names the kind
            self.clean_target()
            self.clean_options()
        self.clean_delivery_rules()

    def kind_changed(self) -> bool:
        # The kind decides what the target is and whether there is a secret:
        # another kind is another channel.
        return self.pk is not None and Channel.objects.filter(pk=self.pk).exclude(kind=self.kind).exists()

    def clean_target(self) -> None:
        """The target as its kind's transport reads it (an email address stripped, …)."""
        from .transports import validate_target

        try:
            self.target = validate_target(self.kind, self.target)
        except ValidationError as exc:
            raise ValidationError({"target": exc.messages}) from exc

    def clean_options(self) -> None:
        """The kind's options and its secret, as its transport reads them."""
        from .transports import transport_class_for

        transport_class = transport_class_for(self.kind)
        errors = {}
        try:
            self.config = transport_class.clean_config(self.config if self.config is not None else {})
        except ValidationError as exc:
            errors["config"] = exc.messages
        if not transport_class.secret_generated:
            try:
                self.secret = transport_class.clean_secret(self.secret.strip())
            except ValidationError as exc:
                errors["secret"] = exc.messages
        if errors:
            raise ValidationError(errors)

    def clean_delivery_rules(self) -> None:
        errors = {}
        # A form's empty field is None; stored, it is "all events" and UTC.
        self.events = chosen = self.events if self.events is not None else []
        self.quiet_hours_timezone = self.quiet_hours_timezone or "UTC"
        if not isinstance(chosen, list) or not all(e in FILTERABLE_EVENTS for e in chosen):
            errors["events"] = f"Expected a list of events among {', '.join(FILTERABLE_EVENTS)}; empty for all."
        elif len(set(chosen)) != len(chosen):
            errors["events"] = "An event is listed twice."
        if (self.quiet_hours_start is None) != (self.quiet_hours_end is None):
            errors["quiet_hours_end" if self.quiet_hours_end is None else "quiet_hours_start"] = (
                "Quiet hours need both a start and an end (or neither).")
        elif self.quiet_hours_start is not None and self.quiet_hours_start == self.quiet_hours_end:
            errors["quiet_hours_end"] = "Quiet hours must end at another time than they start."
        try:
            zoneinfo.ZoneInfo(self.quiet_hours_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors["quiet_hours_timezone"] = f"Unknown time zone {self.quiet_hours_timezone!r}."
        if errors:
            raise ValidationError(errors)

    def quiet_until(self, at: datetime) -> datetime | None:
        """When the quiet hours that `at` falls in end; None outside them."""
        start, end = self.quiet_hours_start, self.quiet_hours_end
        if start is None or end is None or start == end:
            return None
        zone = zoneinfo.ZoneInfo(self.quiet_hours_timezone)
        local = at.astimezone(zone)
        now = local.time()
        inside = start <= now < end if start < end else (now >= start or now < end)  # 22:00–07:00 spans midnight
        if not inside:
            return None
        day = local.date() if now < end else local.date() + timedelta(days=1)
        return datetime.combine(day, end, tzinfo=zone)

    def save(self, *args, **kwargs) -> None:
        if self.enabled:
            # Switched (back) on: why it had been switched off no longer holds.
            self.disabled_reason = ""
        super().save(*args, **kwargs)

    def wants(self, event: str, degraded_only: bool = False) -> bool:
        if not self.enabled:
            return False
        if self.events and event != Event.TEST and event not in self.events:
            return False
        if degraded_only or event == Event.DEGRADED:
            return self.notify_degraded
        return True

    @property
    def is_signed(self) -> bool:
        return self.kind == ChannelKind.WEBHOOK

    def transport(self):
        from .transports import transport_for

        return transport_for(self.kind, self.target, self.secret, self.config)

    def new_secret(self) -> str:
        """A fresh signing secret for a webhook (set, not saved): shown once.
        Other kinds keep the secret their user gave; "" is returned."""
        from .transports import generate_secret

        if not self.is_signed:
            return ""
        self.secret = generate_secret()
        return self.secret

    def rotate_secret(self) -> str:
        secret = self.new_secret()
        self.save(update_fields=["secret"])
        return secret

    def disable(self, reason: str) -> None:
        self.enabled = False
        self.disabled_reason = reason[:500]
        self.save(update_fields=["enabled", "disabled_reason"])


class NotificationQuerySet(TeamScopedQuerySet):
    team_path = "channel__team"

    def due(self, now: datetime) -> NotificationQuerySet:
        """Pending, due, and not leased to a sender right now."""
        return self.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now).filter(
            models.Q(leased_until__isnull=True) | models.Q(leased_until__lt=now)
        )

    def lost(self, now: datetime, grace: timedelta) -> NotificationQuerySet:
        """Due notifications nobody is about to send: never taken and due for
        longer than `grace` (their queued task should have come by now), or
        taken by a sender whose lease ran out (it died mid-send)."""
        return self.due(now).filter(
            models.Q(leased_until__isnull=True, next_attempt_at__lte=now - grace) | models.Q(leased_until__lt=now)
        )


class Notification(models.Model):
    """One message to one channel: the outbox row written in the same
    transaction as the state change, delivered after commit, at least once."""

    # The stable id: webhook-id on every retry, so receivers can drop duplicates.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    monitor = models.ForeignKey("monitors.Monitor", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="notifications")
    incident = models.ForeignKey("monitors.Incident", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="notifications")
    event = models.CharField(max_length=16, choices=Event.choices)
    # Everything the message says, frozen when the event happened.
    context = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    leased_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The sweep: pending rows whose next attempt is due.
            models.Index(fields=["next_attempt_at"], condition=models.Q(status=DeliveryStatus.PENDING),
                         name="notification_due_idx"),
            # Reminders: the latest notification of an incident per channel.
            models.Index(fields=["incident", "channel", "-created_at"], name="notification_incident_idx"),
            # The delivery log, newest first (admin changelist, API list): a page without sorting the table.
            models.Index(fields=["-created_at"], name="notification_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel}"

    @property
    def is_test(self) -> bool:
        return self.event == Event.TEST

    def retry_delay(self, retry_after: float | None) -> float | None:
        """Seconds until the next attempt, or None when attempts are used up."""
        schedule = settings.LOOPR_NOTIFY_BACKOFF
        if self.is_test or self.attempts > len(schedule):
            return None
        base = schedule[self.attempts - 1]
        # ±20 % jitter so that many failed deliveries do not retry in lockstep.
        delay = base * random.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, 3600.0))
        return delay


INTERRUPTED_ERROR = "the sender stopped before it learned the outcome; the receiver may have the message"


class DeliveryAttemptQuerySet(models.QuerySet):
    def interrupt(self) -> int:
        """Mark those still `sending` as interrupted: their sender is gone."""
        return self.filter(outcome=AttemptOutcome.SENDING).update(
            outcome=AttemptOutcome.INTERRUPTED, error=INTERRUPTED_ERROR)


class DeliveryAttempt(models.Model):
    """One try at delivering a notification: who was told, when, and what
    came back. Written before the message is sent, completed after."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="delivery_attempts")
    at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices, default=AttemptOutcome.SENDING)
    ok = models.BooleanField(default=False, help_text="Delivered: the receiver answered 2xx (or SMTP 250).")
    status_code = models.PositiveIntegerField(null=True, blank=True, help_text="HTTP status or SMTP reply code.")
    reply = models.TextField(blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(default=0)

    objects = DeliveryAttemptQuerySet.as_manager()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_outcome_display().lower()} at {self.at:%H:%M:%S}"

    def complete(self, delivery) -> None:
        self.outcome = AttemptOutcome.DELIVERED if delivery.ok else AttemptOutcome.FAILED
        self.ok, self.status_code, self.duration_ms = delivery.ok, delivery.status_code, delivery.duration_ms
        self.reply, self.error = delivery.reply[:2000], delivery.error[:2000]
        self.save(update_fields=["outcome", "ok", "status_code", "reply", "error", "duration_ms"])


MAX_STEPS = 10
MAX_AFTER_MINUTES = 7 * 24 * 60
MIN_REPEAT_MINUTES = 5


class EscalationPolicyQuerySet(TeamScopedQuerySet):
    pass


class EscalationPolicy(TeamOwned, Declared):
    """Who is told about an outage, and who next while nobody acknowledges
    it: ordered steps `{"after_minutes": N, "channels": [ids]}`, N counted
    from the incident's confirmation (0: at once, as plain channels are)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="escalation_policies")
    name = models.CharField(max_length=200)
    steps = models.JSONField(default=list, help_text='Ordered steps: [{"after_minutes": 0, "channels": [1]}, '
                                                     '{"after_minutes": 15, "channels": [2, 3]}].')
    repeat_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="If still unacknowledged this many minutes after the last step, start "
                                         "again from the first step (and so on); empty: stop after the last step.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = EscalationPolicyQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "escalation policies"
        constraints = [
            # A file's key for the object: one per team (loopr/declarative.py).
            # Rows bulk-inserted without one (not through save) have "" until a plan or an apply names them.
            models.UniqueConstraint(fields=["team", "slug"], condition=~models.Q(slug=""), name="escalationpolicy_team_slug"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        problem = steps_problem(self.steps)
        self.fill_team()
        if not problem and self.team_id is not None:
            problem = self.foreign_channels_problem()
        if problem:
            errors["steps"] = problem
        if self.repeat_minutes is not None and self.repeat_minutes < MIN_REPEAT_MINUTES:
            errors["repeat_minutes"] = f"At least {MIN_REPEAT_MINUTES} minutes, or empty for no repeat."
        if errors:
            raise ValidationError(errors)

    def foreign_channels_problem(self) -> str:
        wanted = {pk for step in self.steps for pk in step["channels"]}
        mine = set(Channel.objects.filter(team_id=self.team_id, pk__in=wanted).values_list("pk", flat=True))
        unknown = sorted(wanted - mine)
        return f"No channel of the team has the id(s) {', '.join(map(str, unknown))}." if unknown else ""

    def step(self, index: int) -> dict | None:
        return self.steps[index] if 0 <= index < len(self.steps) else None

    def channels_of(self, index: int) -> list[Channel]:
        step = self.step(index)
        if step is None:
            return []
        return list(Channel.objects.filter(team_id=self.team_id, pk__in=step["channels"], enabled=True))


def steps_problem(steps: object) -> str:
    """What is wrong with a policy's steps, "" if nothing."""
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        return f"Expected a list of 1 to {MAX_STEPS} steps."
    previous = -1
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, dict) or set(step) != {"after_minutes", "channels"}:
            return f'Step {number}: expected {{"after_minutes": N, "channels": [ids]}}.'
        after, channels = step["after_minutes"], step["channels"]
        if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= MAX_AFTER_MINUTES:
            return f"Step {number}: after_minutes must be a whole number from 0 to {MAX_AFTER_MINUTES}."
        if after <= previous:
            return f"Step {number}: after_minutes must be later than the step before's ({previous})."
        if (not isinstance(channels, list) or not channels
                or not all(isinstance(pk, int) and not isinstance(pk, bool) and pk > 0 for pk in channels)):
            return f"Step {number}: channels must be a non-empty list of channel ids."
        previous = after
    return ""


class EscalationQuerySet(models.QuerySet):
    def due(self, now: datetime) -> EscalationQuerySet:
        return self.filter(due_at__lte=now)

    def stop(self) -> int:
        return self.filter(due_at__isnull=False).update(due_at=None)


class Escalation(models.Model):
    """One incident's way through its monitor's escalation policy: the next
    step and when it is due (None once it has stopped), and the steps fired."""

    incident = models.OneToOneField("monitors.Incident", on_delete=models.CASCADE, related_name="escalation")
    monitor = models.ForeignKey("monitors.Monitor", on_delete=models.CASCADE, related_name="+")
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="escalations")
    origin = models.DateTimeField(help_text="Start of the current round: the confirmation, then each repeat.")
    round = models.PositiveSmallIntegerField(default=0)
    next_step = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField(null=True, blank=True)
    fired = models.JSONField(default=list, blank=True,
                             help_text='Each step sent: {"step": n, "round": r, "at": iso, "channels": [ids]}.')

    objects = EscalationQuerySet.as_manager()

    class Meta:
        indexes = [
            # The escalation sweep, every 15 s: escalations whose next step is
            # due (almost always none; a stopped one leaves the index).
            models.Index(fields=["due_at"], condition=models.Q(due_at__isnull=False), name="escalation_due_idx"),
        ]

    def __str__(self) -> str:
        return f"escalation of {self.incident_id} ({self.policy})"

    @classmethod
    def begin(cls, incident, monitor, policy: EscalationPolicy, at: datetime) -> tuple[Escalation, list[Channel]]:
        """Start when the outage's down alert goes out (`at`: its confirmation,
        or the end of the maintenance window it was confirmed in): the
        channels of an `after_minutes: 0` step are told now, the next step is
        scheduled from then."""
        origin = max(incident.confirmed_at, at)
        escalation = cls(incident=incident, monitor=monitor, policy=policy, origin=origin)
        now_channels: list[Channel] = []
        first = policy.step(0)
        if first is not None and first["after_minutes"] == 0:
            now_channels = policy.channels_of(0)
            escalation.record(0, now_channels, origin)
            escalation.advance()
        else:
            escalation.schedule()
        escalation.save()
        return escalation, now_channels

    def schedule(self) -> None:
        step = self.policy.step(self.next_step)
        self.due_at = None if step is None else self.origin + timedelta(minutes=step["after_minutes"])

    def record(self, index: int, channels: list[Channel], at: datetime) -> None:
        self.fired = [*self.fired, {"step": index + 1, "round": self.round, "at": at.isoformat(),
                                    "channels": [c.pk for c in channels]}]

    def advance(self) -> None:
        """On to the next step; after the last, a new round if the policy repeats, else stop."""
        self.next_step += 1
        if self.next_step < len(self.policy.steps):
            self.schedule()
            return
        if self.policy.repeat_minutes is None:
            self.due_at = None
            return
        last = self.policy.steps[-1]["after_minutes"]
        self.origin += timedelta(minutes=last + self.policy.repeat_minutes)
        self.round, self.next_step = self.round + 1, 0
        self.schedule()
