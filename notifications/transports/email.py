"""Email through Django's configured backend (EMAIL_URL in production).

SMTP says itself whether to try again: a 4xx reply is temporary, a 5xx reply
is final. Connection failures and timeouts are worth another try.
"""

from __future__ import annotations

import smtplib
import ssl

from django.conf import settings
from django.core.mail import BadHeaderError, EmailMultiAlternatives, get_connection

from .base import Delivery, Message, Transport, TransportError
from .validation import validate_email_address

# Used when settings.EMAIL_TIMEOUT is unset: Django's default is to wait forever.
DEFAULT_TIMEOUT = 10.0

CONSOLE_BACKEND = "django.core.mail.backends.console.EmailBackend"


def prints_to_console() -> bool:
    """EMAIL_URL left at its default: email is written to the worker's
    output, and nobody receives it."""
    return settings.EMAIL_BACKEND == CONSOLE_BACKEND


class EmailTransport(Transport):
    target_validator = staticmethod(validate_email_address)

    def deliver(self, message: Message) -> Delivery:
        address = self.checked_target()
        email = self.build(message, address)
        connection = get_connection(fail_silently=False, timeout=self.timeout)
        try:
            sent = connection.send_messages([email])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (None, b""))
            raise _smtp_error("the server refused the recipient", code, reply) from exc
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(_stage(exc), exc.smtp_code, exc.smtp_error) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise TransportError(f"the SMTP server closed the connection: {exc}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            # Settings ask for something the server cannot do (STARTTLS, AUTH).
            raise TransportError(f"the SMTP server does not support this: {exc}", permanent=True) from exc
        except BadHeaderError as exc:
            raise TransportError(f"invalid email header: {exc}", permanent=True) from exc
        except ssl.SSLError as exc:
            raise TransportError(f"TLS error talking to the SMTP server: {exc}") from exc
        except (TimeoutError, OSError) as exc:  # refused, unreachable, timed out, reset
            raise TransportError(f"could not talk to the SMTP server: {_describe(exc)}") from exc
        if not sent:
            raise TransportError("the email backend did not send the message")
        return Delivery(ok=True, reply="accepted")

    @property
    def timeout(self) -> float:
        # smtplib applies it to each socket operation, not to the whole
        # exchange: a server answering each command just in time can take
        # longer, and is then sent to again (same Message-ID) by the sweep.
        return float(self.options.get("timeout") or getattr(settings, "EMAIL_TIMEOUT", None) or DEFAULT_TIMEOUT)

    def build(self, message: Message, address: str) -> EmailMultiAlternatives:
        sender = settings.DEFAULT_FROM_EMAIL
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=sender,
            to=[address],
            headers={
                # The same Message-ID on every retry lets mail systems drop a
                # copy whose first delivery we only thought had failed.
                "Message-ID": f"<loopr.{message.id}@{_domain(sender)}>",
                "X-Loopr-Notification-Id": message.id,
                "X-Loopr-Event": message.event,
                # Asks vacation responders not to answer (RFC 3834).
                "Auto-Submitted": "auto-generated",
            },
        )
        email.attach_alternative(message.html, "text/html")
        return email


def _smtp_error(what: str, code: int | None, reply: bytes | str) -> TransportError:
    text = reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else str(reply)
    permanent = code is not None and 500 <= code < 600
    return TransportError(
        f"{what}: {code} {text}".strip(),
        permanent=permanent,
        status_code=code,
        reply=f"{code} {text}".strip(),
    )


def _stage(exc: smtplib.SMTPResponseException) -> str:
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return "the server refused the sender address"
    if isinstance(exc, smtplib.SMTPDataError):
        return "the server refused the message"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "the server refused the login"
    if isinstance(exc, smtplib.SMTPConnectError):
        return "the server refused the connection"
    return "the SMTP server answered"


def _describe(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip(" >") or "localhost"
