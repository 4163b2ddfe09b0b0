from __future__ import annotations

from datetime import datetime

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from loopr.api import DeclaredSerializer, TeamOwnedSerializer, token_team

from ..choices import ChannelKind, DeliveryStatus
from ..models import MAX_AFTER_MINUTES, MAX_STEPS, MIN_REPEAT_MINUTES, Channel, DeliveryAttempt, EscalationPolicy, Notification

# Reminders more often than this would flood a channel while an outage lasts.
MIN_REMINDER_INTERVAL = 60


class ChannelSerializer(TeamOwnedSerializer, DeclaredSerializer):
    """Never returns a secret: a webhook's signing secret is only in the
    creation and rotation answers (ChannelWithSecretSerializer); the tokens
    and keys of the other kinds are write-only."""

    secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=500, trim_whitespace=True,
        help_text="Write-only: the kind's token or key (Telegram bot token, Opsgenie API key, Pushover app token, "
                  "Matrix access token, ntfy access token, the HTTP request kind's Authorization value). Left out "
                  "of an update, the stored one stays. Ignored for webhooks, whose signing secrets Loopr makes.",
    )
    has_secret = serializers.SerializerMethodField()
    team_referrers = ("monitors",)

    class Meta:
        model = Channel
        fields = [
            "id", "team", "slug", "managed", "name", "kind", "target", "config", "secret", "has_secret", "is_default",
            "enabled",
            "disabled_reason", "notify_degraded", "reminder_interval", "events", "quiet_hours_start",
            "quiet_hours_end", "quiet_hours_timezone", "created_at",
        ]
        read_only_fields = ["disabled_reason", "created_at"]
        extra_kwargs = {
            "kind": {"help_text": "Cannot change once the channel exists."},
            "reminder_interval": {"min_value": MIN_REMINDER_INTERVAL},
        }

    def get_has_secret(self, channel: Channel) -> bool:
        """Whether a secret (token, key, signing secret) is stored; it is never shown here."""
        return bool(channel.secret)

    def validate(self, attrs: dict) -> dict:
        kind = attrs.get("kind", getattr(self.instance, "kind", None))
        if kind == ChannelKind.WEBHOOK:
            # Its signing secret is made by Loopr (and rotated with rotate-secret); one sent is ignored.
            attrs.pop("secret", None)
        return super().validate(attrs)

    def create(self, validated_data: dict) -> Channel:
        channel = Channel(**validated_data)
        channel.new_secret()
        channel.save()
        return channel


class SigningSecretField(serializers.CharField):
    """Written like ChannelSerializer's secret; read back only when it is a
    webhook's signing secret, which Loopr made and shows this once."""

    def get_attribute(self, instance: Channel) -> Channel:
        return instance

    def to_representation(self, channel: Channel) -> str:
        return channel.secret if channel.is_signed else ""


class ChannelWithSecretSerializer(ChannelSerializer):
    secret = SigningSecretField(
        required=False, allow_blank=True, max_length=500,
        help_text="Write: as on the channel. Read (this answer only): a webhook's Standard Webhooks signing secret "
                  "(whsec_…), shown only now: store it. Empty for the other kinds, whose secrets are never shown.",
    )


class ChannelTestSerializer(serializers.Serializer):
    """The outcome of a test message: one attempt, never retried."""

    notification = serializers.UUIDField(help_text="The test notification, also listed in /notifications/.")
    ok = serializers.BooleanField(help_text="Whether the receiver accepted the message.")
    status = serializers.CharField(help_text="The notification's status: sent or failed.")
    status_code = serializers.IntegerField(allow_null=True, help_text="HTTP status or SMTP reply code.")
    reply = serializers.CharField(allow_blank=True, help_text="What the receiver answered (clipped).")
    error = serializers.CharField(allow_blank=True, help_text="Why it failed; empty when ok.")
    duration_ms = serializers.FloatField()
    at = serializers.DateTimeField()


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["at", "outcome", "ok", "status_code", "reply", "error", "duration_ms"]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    next_attempt_at = serializers.SerializerMethodField()
    delivery_attempts = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id", "channel", "incident", "monitor", "event", "status", "attempts", "last_error", "created_at",
            "sent_at", "next_attempt_at", "delivery_attempts",
        ]
        read_only_fields = fields

    def get_next_attempt_at(self, notification: Notification) -> datetime | None:
        """When the next attempt is due; null once sent or failed for good."""
        return notification.next_attempt_at if notification.status == DeliveryStatus.PENDING else None


@extend_schema_field({
    "type": "array", "minItems": 1, "maxItems": MAX_STEPS, "items": {
        "type": "object", "additionalProperties": False, "required": ["after_minutes", "channels"],
        "properties": {
            "after_minutes": {"type": "integer", "minimum": 0, "maximum": MAX_AFTER_MINUTES},
            "channels": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
        }}})
class StepsField(serializers.JSONField):
    """A policy's steps (checked by the model's steps_problem), with their shape in the schema."""


class EscalationPolicySerializer(TeamOwnedSerializer, DeclaredSerializer):
    steps = StepsField(
        help_text='Ordered steps, each {"after_minutes": N, "channels": [ids of your channels]}: N minutes after '
                  "the incident is confirmed, if it is still open and unacknowledged, those channels are alerted "
                  "(0: at once). after_minutes grows from step to step.")

    team_referrers = ("monitors",)

    class Meta:
        model = EscalationPolicy
        fields = ["id", "team", "slug", "managed", "name", "steps", "repeat_minutes", "created_at"]
        read_only_fields = ["created_at"]
        # The model's own rule, said here too so that the schema shows it.
        extra_kwargs = {"repeat_minutes": {"min_value": MIN_REPEAT_MINUTES}}

    def validate_steps(self, steps):
        # The model checks the shape and that the channels are its team's;
        # here, that the caller can see them at all (others' are unknown).
        from ..models import steps_problem

        problem = steps_problem(steps)
        if problem:
            raise serializers.ValidationError(problem)
        request = self.context["request"]
        wanted = {pk for step in steps for pk in step["channels"]}
        visible = Channel.objects.visible_to(request.user, team=token_team(request)).filter(pk__in=wanted)
        unknown = sorted(wanted - set(visible.values_list("pk", flat=True)))
        if unknown:
            raise serializers.ValidationError(f"No channel of the team has the id(s) {', '.join(map(str, unknown))}.")
        return steps
