from __future__ import annotations

from datetime import datetime

from rest_framework import serializers

from loopr.api import ValidatedModelSerializer

from ..choices import DeliveryStatus
from ..models import Channel, DeliveryAttempt, Notification

# Reminders more often than this would flood a channel while an outage lasts.
MIN_REMINDER_INTERVAL = 60


class ChannelSerializer(ValidatedModelSerializer):
    """Never returns the signing secret: only the creation and rotation
    answers carry it (ChannelWithSecretSerializer)."""

    class Meta:
        model = Channel
        fields = [
            "id", "name", "kind", "target", "is_default", "enabled", "disabled_reason", "notify_degraded",
            "reminder_interval", "created_at",
        ]
        read_only_fields = ["disabled_reason", "created_at"]
        extra_kwargs = {
            "kind": {"help_text": "Cannot change once the channel exists."},
            "reminder_interval": {"min_value": MIN_REMINDER_INTERVAL},
        }

    def create(self, validated_data: dict) -> Channel:
        channel = Channel(**validated_data)
        channel.new_secret()
        channel.save()
        return channel


class ChannelWithSecretSerializer(ChannelSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="Webhooks: the Standard Webhooks signing secret (whsec_…), shown only in this answer: "
                  "store it. Empty for the other kinds.",
    )

    class Meta(ChannelSerializer.Meta):
        fields = [*ChannelSerializer.Meta.fields, "secret"]


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
