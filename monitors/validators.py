"""Validators shared by the model, the API and the admin."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from loopr.addresses import TargetPolicy, parse, refusal

SCHEMES = ("http", "https", "tcp", "dns", "icmp")

# RFC 9110: a field name is a token; a value holds no control character but
# tab. Values stop at Latin-1 too: that is all http.client can encode.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u0100-\U0010ffff]")


def validate_target_url(value: str) -> None:
    if any(c in value for c in "\r\n\t ") or not value.isprintable():
        raise ValidationError("The URL must not contain whitespace or control characters.")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValidationError(f"Malformed URL: {exc}.") from exc
    if parts.scheme not in SCHEMES:
        raise ValidationError(
            f"Unsupported scheme {parts.scheme or '(none)'!r}: use http://, https://, tcp://host:port, "
            "dns://[resolver]/name?type=A or icmp://host."
        )
    if parts.scheme in ("dns", "icmp"):
        _validate_by_probe(parts.scheme, value)
    else:
        if not parts.hostname:
            raise ValidationError("The URL has no host.")
        port = _port(parts)
        if parts.scheme == "tcp":
            if port is None:
                raise ValidationError("A tcp:// target needs a port: tcp://host:port.")
            if parts.path not in ("", "/") or parts.query:
                raise ValidationError("A tcp:// target is only tcp://host:port.")
    if parts.hostname:  # a dns:// target's is its resolver
        _validate_policy(parts.hostname)


def _validate_policy(host: str) -> None:
    """LOOPR_MONITOR_TARGETS on an address written in the URL (or localhost),
    as a courtesy: names are judged by the probe node when it connects, on
    what they resolve to then, and by its own setting."""
    policy = settings.LOOPR_MONITOR_TARGETS
    if policy == TargetPolicy.ANY:
        return
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always loopback
        addresses = ["127.0.0.1", "::1"]
    else:
        try:
            addresses = [str(parse(host))]
        except ValueError:
            return
    for address in addresses:
        reason = refusal(address, policy)
        if reason:
            raise ValidationError(f"{host}: {reason}, which LOOPR_MONITOR_TARGETS={policy} refuses.")


def _validate_by_probe(scheme: str, value: str) -> None:
    # The probe's own parser: what passes here is what the probe can run.
    from .probes.dns import parse_dns_url
    from .probes.icmp import parse_icmp_url

    try:
        (parse_dns_url if scheme == "dns" else parse_icmp_url)(value)
    except ValueError as exc:
        raise ValidationError(f"Invalid {scheme}:// target: {exc}.") from exc


def validate_assertions(value: object) -> None:
    from .probes.assertions import assertion_problems

    problems = assertion_problems(value)
    if problems:
        raise ValidationError(problems)


def validate_alert_days(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise ValidationError("A list of whole days, e.g. [30, 14, 7, 1]; [] for no alerts.")
    if len(value) > 10 or any(not 1 <= d <= 365 for d in value):
        raise ValidationError("At most 10 thresholds, each from 1 to 365 days.")


def _port(parts: SplitResult) -> int | None:
    """The explicit port, if any. Port 0 is not one anything listens on: a
    connection to it fails at once, so a monitor on it could only ever be
    down."""
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = 0
    if port == 0:
        raise ValidationError(f"Invalid port {_raw_port(parts)!r}: the port must be a number from 1 to 65535.")
    return port


def _raw_port(parts: SplitResult) -> str:
    host_and_port = parts.netloc.rpartition("@")[2]
    return host_and_port.rpartition("]")[2].rpartition(":")[2]


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
        if not _HEADER_NAME.fullmatch(name):
            raise ValidationError(f"Invalid header name {name!r}.")
        if any(c in val for c in "\r\n\0"):
            raise ValidationError(f"Header {name!r} contains CR, LF or NUL.")
        if _HEADER_VALUE_BAD.search(val) or val[:1].isspace():
            # The probe could never send it: every check would end in an error.
            raise ValidationError(
                f"Header {name!r}: control characters, leading spaces and characters beyond Latin-1 "
                "cannot be sent."
            )
        if len(name) + len(val) > 8192:
            raise ValidationError(f"Header {name!r} is too long.")
