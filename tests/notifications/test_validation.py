from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from notifications.transports import validate_target


@pytest.mark.parametrize(
    "address",
    ["alice@example.com", "ops+alerts@sub.example.co.uk", "  bob@example.org  ", "x@xn--bcher-kva.example"],
)
def test_it_accepts_email_addresses(address):
    assert validate_target("email", address) == address.strip()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("", "Enter an email address"),
        ("alice", "not a valid email address"),
        ("alice@", "not a valid email address"),
        ("Alice <alice@example.com>", "not a valid email address"),
        ("alice@example.com\nBcc: eve@example.com", "not a valid email address"),
        ("a" * 250 + "@example.com", "at most 254"),
    ],
)
def test_it_rejects_what_is_not_one_email_address(address, reason):
    with pytest.raises(ValidationError, match=reason):
        validate_target("email", address)


@pytest.mark.parametrize("kind", ["webhook", "slack", "discord"])
@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "https://discord.com/api/webhooks/123/abc?wait=true",
        "http://receiver:8080/hook",  # a compose service name
        "http://127.0.0.1:5000/",
        "https://[2001:db8::1]/hook",
        "https://bücher.example/hook",
        "HTTPS://EXAMPLE.COM/Hook#frag",
    ],
)
def test_it_accepts_http_urls_for_every_http_kind(kind, url):
    assert validate_target(kind, url) == url


@pytest.mark.parametrize("kind", ["webhook", "slack", "discord"])
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "Enter a URL"),
        ("example.com/hook", "http:// or https://"),
        ("ftp://example.com/hook", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("https://user:secret@example.com/hook", "user name or password"),
        ("https://token@example.com/hook", "user name or password"),
        ("https:///hook", "no host"),
        ("https://exa mple.com/hook", "spaces, control or invisible"),
        ("https://example.com/ho\nok", "spaces, control or invisible"),
        ("https://example.com/\u200bhook", "spaces, control or invisible"),
        ("https://example.com\\@evil.test/", "backslashes"),
        ("https://example.com:99999/hook", "invalid port"),
        ("https://example.com:0/hook", "invalid port"),
        ("https://exa_mple..com/hook", "not a valid host name"),
        ("https://example.com/" + "a" * 2000, "too long"),
    ],
)
def test_it_rejects_urls_that_are_not_plain_http(kind, url, reason):
    with pytest.raises(ValidationError, match=reason):
        validate_target(kind, url)


def test_it_rejects_an_unknown_kind():
    with pytest.raises(ValidationError, match="Unknown channel kind 'pager'"):
        validate_target("pager", "https://example.com/")


def test_it_rejects_what_is_not_text():
    with pytest.raises(ValidationError, match="Expected a string"):
        validate_target("webhook", None)
