"""How an alert leaves Loopr: one module per channel kind on a shared base.

`transport_for(kind, target, secret, options).send(message)` makes one
attempt and returns a `Delivery`; it never raises.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from ..choices import ChannelKind
from .base import Delivery, Message, Transport, TransportError
from .discord import DiscordTransport
from .email import EmailTransport
from .googlechat import GoogleChatTransport
from .http_request import HttpRequestTransport
from .matrix import MatrixTransport
from .mattermost import MattermostTransport
from .ntfy import NtfyTransport
from .opsgenie import OpsgenieTransport
from .pagerduty import PagerDutyTransport
from .pushover import PushoverTransport
from .rocketchat import RocketChatTransport
from .slack import SlackTransport
from .teams import TeamsTransport
from .telegram import TelegramTransport
from .webhook import WebhookTransport, generate_secret

TRANSPORTS: dict[str, type[Transport]] = {
    ChannelKind.EMAIL: EmailTransport,
    ChannelKind.WEBHOOK: WebhookTransport,
    ChannelKind.SLACK: SlackTransport,
    ChannelKind.DISCORD: DiscordTransport,
    ChannelKind.PAGERDUTY: PagerDutyTransport,
    ChannelKind.OPSGENIE: OpsgenieTransport,
    ChannelKind.TEAMS: TeamsTransport,
    ChannelKind.TELEGRAM: TelegramTransport,
    ChannelKind.NTFY: NtfyTransport,
    ChannelKind.PUSHOVER: PushoverTransport,
    ChannelKind.GOOGLE_CHAT: GoogleChatTransport,
    ChannelKind.MATTERMOST: MattermostTransport,
    ChannelKind.ROCKETCHAT: RocketChatTransport,
    ChannelKind.MATRIX: MatrixTransport,
    ChannelKind.HTTP: HttpRequestTransport,
}


def transport_for(kind: str, target: str, secret: str = "", options: dict[str, Any] | None = None) -> Transport:
    try:
        transport_class = TRANSPORTS[kind]
    except KeyError:
        raise ValueError(f"unknown channel kind {kind!r}") from None
    return transport_class(target, secret, options)


def transport_class_for(kind: str) -> type[Transport]:
    try:
        return TRANSPORTS[kind]
    except KeyError:
        raise ValidationError(f"Unknown channel kind {kind!r}; expected one of {', '.join(TRANSPORTS)}.") from None


def validate_target(kind: str, target: str) -> str:
    """The cleaned target for a channel of `kind`, or ValidationError saying what is wrong."""
    return transport_class_for(kind).target_validator(target)


__all__ = [
    "TRANSPORTS",
    "Delivery",
    "DiscordTransport",
    "EmailTransport",
    "Message",
    "SlackTransport",
    "Transport",
    "TransportError",
    "WebhookTransport",
    "generate_secret",
    "transport_class_for",
    "transport_for",
    "validate_target",
]
