from __future__ import annotations

from django.db import models


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook (signed)"
    SLACK = "slack", "Slack"
    DISCORD = "discord", "Discord"


class Event(models.TextChoices):
    DOWN = "down", "Down"
    UP = "up", "Up (recovered)"
    DEGRADED = "degraded", "Degraded"
    REMINDER = "reminder", "Reminder (still down)"
    FLAPPING = "flapping", "Flapping"
    TEST = "test", "Test"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
