from __future__ import annotations

from django.db import models

# Defined with the monitors (whose state machine decides what to announce);
# importable from here too, as code in both apps always has.
from monitors.choices import Event  # noqa: F401


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook (signed)"
    SLACK = "slack", "Slack"
    DISCORD = "discord", "Discord"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
