"""Delivery through the outbox: a sender leases a notification for its
transport's timeout plus a margin, writes the attempt before it sends, and
completes it after; a sender that dies leaves an attempt the sweep marks
interrupted when it takes the notification over."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.utils import timezone

from notifications import services
from notifications.models import Notification
from notifications.transports import Delivery, transport_for
from notifications.transports.http import DEFAULT_TIMEOUT as HTTP_TIMEOUT
from tests.factories import NotificationFactory

pytestmark = pytest.mark.django_db


class InFlight(EmailBackend):
    """The test backend, noting what the outbox says while the message is on its way."""

    seen: list[tuple[list[str], object]] = []

    def send_messages(self, messages):
        notification = Notification.objects.get(pk=messages[0].extra_headers["X-Loopr-Notification-Id"])
        InFlight.seen.append((list(notification.delivery_attempts.values_list("outcome", flat=True)),
                              notification.leased_until))
        return super().send_messages(messages)


def lease_of(timeout: float) -> timedelta:
    return timedelta(seconds=timeout + services.LEASE_MARGIN)


@pytest.mark.parametrize("kind", ["webhook", "slack", "discord"])
def test_an_http_transport_times_out_at_its_total_deadline(kind):
    assert transport_for(kind, "https://hooks.example.com/x").timeout == HTTP_TIMEOUT


def test_the_email_transport_times_out_at_email_timeout(settings):
    settings.EMAIL_TIMEOUT = 7
    assert transport_for("email", "ops@example.com").timeout == 7


def test_while_a_message_is_in_flight_its_attempt_is_logged_as_sending_under_a_lease_of_the_transport_timeout(
    settings
):
    settings.EMAIL_BACKEND = f"{__name__}.InFlight"
    settings.EMAIL_TIMEOUT = 7
    InFlight.seen.clear()
    notification = NotificationFactory(channel__kind="email")
    now = timezone.now()

    attempt = services.deliver(str(notification.pk), now=now)

    # Before the send: one attempt, outcome unknown, and the notification
    # held for EMAIL_TIMEOUT plus the margin, not a fixed two minutes.
    assert InFlight.seen == [(["sending"], now + lease_of(7))]
    # After: the attempt completed, the lease given back.
    attempt.refresh_from_db()
    notification.refresh_from_db()
    assert (attempt.outcome, attempt.ok, notification.status, notification.attempts) == ("delivered", True, "sent", 1)
    assert notification.leased_until is None and len(mail.outbox) == 1


def test_a_notification_is_not_sent_twice_while_its_sender_holds_the_lease():
    notification = NotificationFactory(channel__kind="email")
    now = timezone.now()
    assert services.claim(notification, 10, now) is not None
    assert services.deliver(str(notification.pk), now=now + lease_of(10) - timedelta(seconds=1)) is None
    assert mail.outbox == []


def test_the_sweep_takes_over_a_notification_whose_sender_died_mid_send_once_its_lease_runs_out():
    notification = NotificationFactory(channel__kind="email")
    timeout = transport_for("email", notification.channel.target).timeout
    started = timezone.now()
    services.claim(notification, timeout, started)  # ... and the worker is killed during the send
    expires = started + lease_of(timeout)

    # Still within the lease: the sender may yet finish.
    assert services.sweep(now=expires - timedelta(seconds=1)) == 0
    assert list(notification.delivery_attempts.values_list("outcome", flat=True)) == ["sending"]
    # Past it: taken over at once, without the grace a never-sent one gets,
    # and the attempt the receiver may have seen is marked interrupted.
    assert services.sweep(now=expires + timedelta(seconds=0.1)) == 1
    assert list(notification.delivery_attempts.values_list("outcome", flat=True)) == ["interrupted"]

    services.deliver(str(notification.pk), now=expires + timedelta(seconds=0.2))
    notification.refresh_from_db()
    # Two attempts in the log, one message actually received, the same id.
    assert list(notification.delivery_attempts.values_list("outcome", flat=True)) == ["interrupted", "delivered"]
    assert (notification.status, notification.attempts) == ("sent", 2)
    [sent] = mail.outbox
    assert sent.extra_headers["X-Loopr-Notification-Id"] == str(notification.pk)


def test_a_new_sender_marks_its_dead_predecessors_attempt_interrupted_even_without_the_sweep():
    # (the broker redelivers the killed worker's task once its visibility timeout passes)
    notification = NotificationFactory(channel__kind="email")
    started = timezone.now()
    services.claim(notification, 10, started)
    services.deliver(str(notification.pk), now=started + lease_of(10) + timedelta(seconds=1))
    assert list(notification.delivery_attempts.values_list("outcome", flat=True)) == ["interrupted", "delivered"]


def test_a_sender_that_outlived_its_lease_keeps_its_outcome_and_leaves_the_notification_to_its_successor():
    notification = NotificationFactory(channel__kind="email")
    started = timezone.now()
    slow = services.claim(notification, 10, started)
    slow_view = Notification.objects.get(pk=notification.pk)  # what the slow sender holds
    successor = services.claim(Notification.objects.get(pk=notification.pk), 10,
                               started + lease_of(10) + timedelta(seconds=1))

    # The slow one finally hears back: its attempt says so, but the
    # notification now belongs to the successor.
    assert services.settle(slow_view, slow, Delivery(ok=False, error="HTTP 503"), timezone.now()) is None
    slow.refresh_from_db()
    notification.refresh_from_db()
    assert (slow.outcome, slow.error) == ("failed", "HTTP 503")
    assert notification.status == "pending" and notification.leased_until is not None

    successor_view = Notification.objects.get(pk=notification.pk)
    services.settle(successor_view, successor, Delivery(ok=True, reply="250"), timezone.now())
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.leased_until) == ("sent", 2, None)
