from __future__ import annotations

from datetime import datetime, timezone

import pytest

from notifications.choices import ChannelKind
from notifications.transports import TRANSPORTS, Delivery, Transport, TransportError, transport_for
from notifications.transports.http import parse_retry_after


class Exploding(Transport):
    target_validator = staticmethod(str)

    def deliver(self, message):
        raise RuntimeError("boom")


class Refusing(Transport):
    target_validator = staticmethod(str)

    def deliver(self, message):
        raise TransportError("no thanks", permanent=True, status_code=554, reply="x" * 2000)


def test_send_turns_an_unexpected_exception_into_a_retryable_failure(message):
    delivery = Exploding("anything").send(message)

    # The outbox always gets a Delivery, and a bug is worth another try.
    assert delivery == Delivery(ok=False, error="internal error: RuntimeError: boom", duration_ms=delivery.duration_ms)


def test_send_turns_a_transport_error_into_a_delivery(message):
    delivery = Refusing("anything").send(message)

    assert not delivery.ok and delivery.permanent
    assert delivery.status_code == 554
    assert delivery.error == "no thanks"
    # Replies are cut so they fit the delivery log.
    assert len(delivery.reply) == 500


def test_every_channel_kind_has_a_transport():
    assert set(TRANSPORTS) == set(ChannelKind.values)
    transport = transport_for("slack", "https://hooks.slack.com/x", options={"timeout": 3})
    assert transport.target == "https://hooks.slack.com/x"
    assert transport.timeout == 3


def test_an_unknown_kind_has_no_transport():
    with pytest.raises(ValueError, match="unknown channel kind"):
        transport_for("pager", "x")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("0", 0.0),
        ("999999", 3600.0),
        ("Sun, 22 Nov 2026 01:02:00 GMT", 120.0),
        ("Sun, 22 Nov 2026 00:00:00 GMT", 0.0),  # already past
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header, expected):
    now = datetime(2026, 11, 22, 1, 0, tzinfo=timezone.utc)

    assert parse_retry_after(header, now=now) == expected
