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
    PAGERDUTY = "pagerduty", "PagerDuty"
    OPSGENIE = "opsgenie", "Opsgenie"
    TEAMS = "teams", "Microsoft Teams"
    TELEGRAM = "telegram", "Telegram"
    NTFY = "ntfy", "ntfy"
    PUSHOVER = "pushover", "Pushover"
    GOOGLE_CHAT = "googlechat", "Google Chat"
    MATTERMOST = "mattermost", "Mattermost"
    ROCKETCHAT = "rocketchat", "Rocket.Chat"
    MATRIX = "matrix", "Matrix"
    HTTP = "http", "HTTP request"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class AttemptOutcome(models.TextChoices):
    # Recorded before anything is sent, so the log shows every attempt a
    # receiver may have seen, whatever happens to the sender.
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    # The sender stopped (killed, lost) before it learned the outcome: the
    # receiver may or may not have the message; it is sent again.
    INTERRUPTED = "interrupted", "Interrupted"
