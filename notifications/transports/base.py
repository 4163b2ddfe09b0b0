"""What every transport takes and returns, and the one rule they share:
`send()` never raises.

A transport makes exactly one delivery attempt. Whether and when to try again
is the caller's decision (the Notification outbox), made from the `Delivery`
it gets back: `permanent` says a retry cannot help, `retry_after` says when the
receiver asked to be tried again. Transports never touch the database.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, ClassVar

from django.core.exceptions import ValidationError

log = logging.getLogger(__name__)

# Replies and errors end up in the delivery log and the API; a receiver's
# 10 MB error page must not.
MAX_REPLY_CHARS = 500


@dataclass(frozen=True)
class Message:
    id: str  # stable id of the notification: webhook-id / dedupe key, same on every retry
    event: str  # an Event value
    subject: str
    text: str  # plain-text body
    html: str  # HTML body (emails)
    payload: dict[str, Any]  # the JSON document (webhooks)
    created_at: datetime  # aware UTC; when the event happened
    # The signed one-click acknowledgement link, while there is an open
    # incident to acknowledge; "" otherwise.
    ack_url: str = ""
    # The same facts as the bodies, for kinds that lay them out themselves
    # (cards, fields): the headline sentence and (label, value) rows.
    headline: str = ""
    rows: tuple[tuple[str, str], ...] = ()

    @property
    def data(self) -> dict[str, Any]:
        return self.payload.get("data") or {}

    @property
    def monitor(self) -> dict[str, Any]:
        return self.data.get("monitor") or {}

    @property
    def incident(self) -> dict[str, Any]:
        return self.data.get("incident") or {}

    @property
    def summary(self) -> str:
        """The subject without the [Loopr] tag."""
        return str(self.data.get("summary") or self.subject)

    def dedup_key(self) -> str:
        """What a paging provider groups this message's events by: the
        incident (so that `up` closes what `down` opened), else the monitor
        (degraded and flapping outside an outage), else this message."""
        if self.incident.get("id") is not None:
            return f"loopr-incident-{self.incident['id']}"
        if self.monitor.get("id") is not None:
            return f"loopr-monitor-{self.monitor['id']}"
        return f"loopr-notification-{self.id}"


@dataclass
class Delivery:
    """The outcome of one attempt; returned, never raised."""

    ok: bool
    permanent: bool = False  # a retry cannot help: stop now
    disable_channel: bool = False  # the receiver said the target is gone for good (HTTP 410)
    retry_after: float | None = None  # seconds, from a Retry-After header on 429/503
    status_code: int | None = None  # HTTP status or SMTP reply code
    reply: str = ""  # response body snippet or SMTP reply text
    error: str = ""  # why it failed, for humans; "" when ok
    duration_ms: float = 0.0


class TransportError(Exception):
    """Raised inside a transport's `deliver()`; `send()` turns it into a Delivery."""

    def __init__(
        self,
        message: str,
        permanent: bool = False,
        *,
        status_code: int | None = None,
        reply: str = "",
        retry_after: float | None = None,
        disable_channel: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status_code = status_code
        self.reply = reply
        self.retry_after = retry_after
        self.disable_channel = disable_channel

    def to_delivery(self) -> Delivery:
        return Delivery(
            ok=False,
            permanent=self.permanent,
            disable_channel=self.disable_channel,
            retry_after=self.retry_after,
            status_code=self.status_code,
            reply=clip(self.reply),
            error=clip(self.message),
        )


class Transport:
    """One channel kind. Subclasses implement `deliver()` and name the
    validator their target must pass."""

    # A staticmethod: returns the cleaned target or raises ValidationError.
    target_validator: ClassVar[Callable[[str], str]]
    # What the kind's secret is (a bot token, an API key), "" for a kind that
    # takes none. Secrets are write-only in the API.
    secret_label: ClassVar[str] = ""
    secret_required: ClassVar[bool] = False
    # Made by Loopr (the webhook signing secret), never typed in by a user.
    secret_generated: ClassVar[bool] = False

    @classmethod
    def clean_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The kind's options, cleaned; ValidationError naming the option
        when one is wrong. Kinds without options take none."""
        if config:
            raise ValidationError(f"{', '.join(sorted(config))}: not an option of this kind (it takes none).")
        return {}

    @classmethod
    def clean_secret(cls, secret: str) -> str:
        if cls.secret_required and not secret:
            raise ValidationError(f"Required: the {cls.secret_label}.")
        if secret and not cls.secret_label:
            raise ValidationError("This kind takes no secret.")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in secret):
            # Secrets travel in headers and URLs: a line break would start another header.
            raise ValidationError("A secret is one line, without control characters.")
        return secret

    def __init__(self, target: str, secret: str = "", options: dict[str, Any] | None = None) -> None:
        self.target = target
        self.secret = secret
        self.options = dict(options or {})

    def send(self, message: Message) -> Delivery:
        started = time.monotonic()
        try:
            delivery = self.deliver(message)
        except TransportError as exc:
            delivery = exc.to_delivery()
        except Exception as exc:  # noqa: BLE001 - the outbox needs a Delivery, whatever broke
            log.exception("%s failed unexpectedly for notification %s", type(self).__name__, message.id)
            delivery = Delivery(ok=False, error=clip(f"internal error: {type(exc).__name__}: {exc}"))
        delivery.duration_ms = round((time.monotonic() - started) * 1000, 1)
        return delivery

    def deliver(self, message: Message) -> Delivery:
        """Make the attempt: return a Delivery when it worked, raise TransportError when not."""
        raise NotImplementedError

    @property
    def timeout(self) -> float:
        """Seconds after which an attempt gives up: the outbox holds a
        notification for its sender this long (plus a margin), and then takes
        it to be dead."""
        raise NotImplementedError

    def checked_target(self) -> str:
        # The API validates targets on the way in; checking again here keeps a
        # row edited by hand (or by an older release) from reaching the network.
        try:
            return self.target_validator(self.target)
        except ValidationError as exc:
            raise TransportError(f"invalid target: {' '.join(exc.messages)}", permanent=True) from exc


def clip(text: str, limit: int = MAX_REPLY_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
