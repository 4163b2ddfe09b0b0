from __future__ import annotations

import email
import email.policy

from notifications.transports import transport_for
from tests.notifications.conftest import free_port


def test_it_delivers_the_subject_text_and_html(smtp_server, message):
    delivery = transport_for("email", "alice@example.com").send(message)

    assert delivery.ok, delivery.error
    assert delivery.duration_ms > 0
    # One multipart message, with both bodies and the subject as rendered.
    [raw] = smtp_server.messages
    received = email.message_from_bytes(raw, policy=email.policy.default)
    # (strip: Django folds an encoded subject onto a continuation line, which
    # the parser reads back with a leading space.)
    assert received["Subject"].strip() == message.subject
    assert received["To"] == "alice@example.com"
    assert received.get_body(("plain",)).get_content().replace("\r\n", "\n") == message.text
    assert received.get_body(("html",)).get_content().strip() == message.html
    # The id travels along, the same on every retry.
    assert received["X-Loopr-Notification-Id"] == message.id
    assert received["Message-ID"] == f"<loopr.{message.id}@example.com>"


def test_a_temporary_refusal_is_retried_and_its_code_recorded(smtp_server, message):
    smtp_server.mode = "defer_first_data"

    first = transport_for("email", "alice@example.com").send(message)
    second = transport_for("email", "alice@example.com").send(message)

    # 451 at DATA: not delivered, worth another try, and the log says why.
    assert not first.ok
    assert not first.permanent
    assert first.status_code == 451
    assert "try again later" in first.reply
    assert "451" in first.error
    # The next attempt gets through.
    assert second.ok
    assert len(smtp_server.messages) == 1


def test_an_unknown_recipient_is_a_permanent_failure(smtp_server, message):
    smtp_server.mode = "reject_rcpt"

    delivery = transport_for("email", "nobody@example.com").send(message)

    assert not delivery.ok
    assert delivery.permanent
    assert delivery.status_code == 550
    assert "no such user" in delivery.reply
    assert smtp_server.messages == []


def test_a_mail_server_that_is_down_is_retried(settings, message):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()  # nothing listens there
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 2

    delivery = transport_for("email", "alice@example.com").send(message)

    assert not delivery.ok
    assert not delivery.permanent
    assert "connection refused" in delivery.error


def test_an_invalid_address_fails_permanently_without_talking_to_the_server(smtp_server, message):
    delivery = transport_for("email", "not an address").send(message)

    assert not delivery.ok
    assert delivery.permanent
    assert "invalid target" in delivery.error
    assert smtp_server.messages == []
