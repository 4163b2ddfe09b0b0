"""Target checks shared by the API (on the way in) and the transports (on the
way out). Each returns the cleaned target or raises Django's ValidationError
with a message a user can act on.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

MAX_URL_LENGTH = 2000
MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$", re.IGNORECASE)


def validate_email_address(value: str) -> str:
    address = _text(value).strip()
    if not address:
        raise ValidationError("Enter an email address.")
    if len(address) > MAX_EMAIL_LENGTH:
        raise ValidationError(f"An email address has at most {MAX_EMAIL_LENGTH} characters.")
    try:
        validate_email(address)
    except ValidationError:
        raise ValidationError(f"{address!r} is not a valid email address (expected name@example.com).") from None
    return address


def validate_http_url(value: str) -> str:
    url = _text(value).strip()
    if not url:
        raise ValidationError("Enter a URL.")
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"The URL is too long ({len(url)} characters, at most {MAX_URL_LENGTH}).")
    if any(_is_invisible(ch) for ch in url):
        raise ValidationError("The URL must not contain spaces, control or invisible characters.")
    if "\\" in url:
        # Parsers disagree on backslashes (browsers read them as "/"), which
        # is how a URL that looks harmless here gets sent somewhere else.
        raise ValidationError("The URL must not contain backslashes.")
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"http", "https"}:
        raise ValidationError("Use an http:// or https:// URL.")
    if "@" in parts.netloc:
        raise ValidationError(
            "The URL must not contain a user name or password; put credentials in the path or use the signing secret."
        )
    host = parts.hostname
    if not host:
        raise ValidationError("The URL has no host name.")
    try:
        port = parts.port
    except ValueError:
        raise ValidationError("The URL has an invalid port.") from None
    if port == 0:
        raise ValidationError("The URL has an invalid port.")
    if not _is_host(host):
        raise ValidationError(f"{host!r} is not a valid host name.")
    return url


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("Expected a string.")
    return value


def _is_invisible(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.rstrip(".").split(".")
    return len(ascii_host) <= 253 and all(_LABEL.match(label) for label in labels)
