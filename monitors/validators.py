"""Validators shared by the model, the API and the admin."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

SCHEMES = ("http", "https", "tcp")


def validate_target_url(value: str) -> None:
    if any(c in value for c in "\r\n\t ") or not value.isprintable():
        raise ValidationError("The URL must not contain whitespace or control characters.")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"Malformed URL: {exc}.") from exc
    if parts.scheme not in SCHEMES:
        raise ValidationError(
            f"Unsupported scheme {parts.scheme or '(none)'!r}: use http://, https:// or tcp://host:port."
        )
    if not parts.hostname:
        raise ValidationError("The URL has no host.")
    if parts.scheme == "tcp":
        if port is None:
            raise ValidationError("A tcp:// target needs a port: tcp://host:port.")
        if parts.path not in ("", "/") or parts.query:
            raise ValidationError("A tcp:// target is only tcp://host:port.")


def validate_expected_status(value: str) -> None:
    from .probes import parse_expected_status

    try:
        parse_expected_status(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


def validate_headers(value: object) -> None:
    if not isinstance(value, dict):
        raise ValidationError("Headers must be an object of name: value strings.")
    if len(value) > 50:
        raise ValidationError("At most 50 headers.")
    for name, val in value.items():
        if not isinstance(name, str) or not isinstance(val, str):
            raise ValidationError("Header names and values must be strings.")
        if not name or any(c in name for c in "\r\n:\0 \t"):
            raise ValidationError(f"Invalid header name {name!r}.")
        if any(c in val for c in "\r\n\0"):
            raise ValidationError(f"Header {name!r} contains CR, LF or NUL.")
        if len(name) + len(val) > 8192:
            raise ValidationError(f"Header {name!r} is too long.")
