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


class Options:
    """A kind's options (a channel's `config`), read one by one: each getter
    cleans one option, and every error names the option it is about."""

    def __init__(self, config: object) -> None:
        if not isinstance(config, dict):
            raise ValidationError("Expected an object of options.")
        self.given = dict(config)
        self.cleaned: dict[str, object] = {}
        self.errors: list[str] = []

    def _take(self, name: str, default: object) -> object:
        return self.given.pop(name, default)

    def choice(self, name: str, choices: list[str], default: str) -> str:
        value = self._take(name, default)
        if value not in choices:
            self.errors.append(f"{name}: expected one of {', '.join(choices)}, got {value!r}.")
            value = default
        self.cleaned[name] = value
        return value

    def integer(self, name: str, default: int | None, minimum: int, maximum: int) -> int | None:
        value = self._take(name, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            self.errors.append(f"{name}: expected a whole number from {minimum} to {maximum}, got {value!r}.")
            value = default
        self.cleaned[name] = value
        return value

    def url(self, name: str) -> str:
        value = self._take(name, "")
        try:
            value = validate_http_url(value)
        except ValidationError as exc:
            self.errors.append(f"{name}: {' '.join(exc.messages)}")
        self.cleaned[name] = value
        return value

    def text(self, name: str, default: str = "", max_length: int = 200) -> str:
        value = self._take(name, default)
        if not isinstance(value, str) or len(value) > max_length or any(_is_invisible(c) and c != " " for c in value):
            self.errors.append(f"{name}: expected one line of text of at most {max_length} characters.")
            value = default
        self.cleaned[name] = value
        return value

    def raw(self, name: str, default: object) -> object:
        """For an option whose getter lives with its kind: it checks, then `keep()`s or `error()`s."""
        return self._take(name, default)

    def keep(self, name: str, value: object) -> None:
        self.cleaned[name] = value

    def error(self, name: str, message: str) -> None:
        self.errors.append(f"{name}: {message}")

    def done(self) -> dict[str, object]:
        for name in sorted(self.given):
            self.errors.append(f"{name}: not an option of this kind.")
        if self.errors:
            raise ValidationError(self.errors)
        return self.cleaned


def validate_token(value: str, label: str, pattern: re.Pattern[str], example: str) -> str:
    """A provider's key or id, which may end up in a URL's path: only the
    characters the provider issues, so that it cannot change the request."""
    token = _text(value).strip()
    if not pattern.fullmatch(token):
        raise ValidationError(f"That is not a valid {label} (expected something like {example}).")
    return token
