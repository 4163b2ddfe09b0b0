from __future__ import annotations

from datetime import datetime, timezone

import pytest

from loopr.formatting import format_duration
from notifications.render import display_url, render
from tests.notifications.conftest import make_context

RESOLVED = {
    "id": 7,
    "started_at": "2026-11-22T01:23:10Z",
    "confirmed_at": "2026-11-22T01:24:00Z",
    "resolved_at": "2026-11-22T01:27:22Z",
    "duration_seconds": 252,
    "cause": {"kind": "status", "message": "HTTP 503, expected 200-399"},
    "regions": ["eu-west", "us-east"],
}


def test_a_down_subject_says_what_since_when_and_why():
    message = render(make_context("down"))

    assert message.subject == (
        "[Loopr] DOWN: web (https://example.com/health) since 2026-11-22 01:23 UTC — HTTP 503, expected 200-399"
    )
    # The bodies carry the same facts, plus where it failed from.
    for body in (message.text, message.html):
        assert "web" in body
        assert "2026-11-22 01:23 UTC" in body
        assert "HTTP 503, expected 200-399" in body
        assert "eu-west" in body
    assert message.event == "down"
    assert message.created_at == datetime(2026, 11, 22, 2, 28, tzinfo=timezone.utc)


def test_a_recovery_subject_says_how_long_it_was_down():
    message = render(make_context("up", incident=RESOLVED))

    assert message.subject == "[Loopr] UP: web is back after 4 min 12 s"
    # What it was down for and since when stay in the body.
    assert "2026-11-22 01:23 UTC" in message.text
    assert "2026-11-22 01:27 UTC" in message.text
    assert "HTTP 503, expected 200-399" in message.text


def test_a_recovery_works_out_the_downtime_when_the_incident_does_not_say():
    incident = dict(RESOLVED, duration_seconds=None)

    assert render(make_context("up", incident=incident)).subject == "[Loopr] UP: web is back after 4 min 12 s"


def test_a_degraded_subject_gives_the_details():
    message = render(
        make_context("degraded", incident=None, details="latency 1840 ms above the 1000 ms threshold")
    )

    assert message.subject == (
        "[Loopr] DEGRADED: web (https://example.com/health) since 2026-11-22 02:28 UTC"
        " — latency 1840 ms above the 1000 ms threshold"
    )
    assert "latency 1840 ms above the 1000 ms threshold" in message.html


def test_a_reminder_says_how_long_it_has_been_down():
    message = render(make_context("reminder", occurred_at="2026-11-22T02:28:10Z"))

    assert message.subject.startswith("[Loopr] REMINDER: web (https://example.com/health) still down after 1 h 5 min")
    # Since when and why, as for the first alert.
    assert "since 2026-11-22 01:23 UTC" in message.subject
    assert message.subject.endswith("— HTTP 503, expected 200-399")
    assert "still DOWN after 1 h 5 min" in message.text


def test_a_flapping_subject_says_how_it_flaps():
    message = render(make_context("flapping", details="changed state 6 times in 10 minutes"))

    assert message.subject == "[Loopr] FLAPPING: web (https://example.com/health) changed state 6 times in 10 minutes"
    assert "changed state 6 times in 10 minutes" in message.text


def test_a_test_message_is_clearly_marked_as_a_test():
    context = make_context("test", monitor=None, incident=None, channel={"name": "Ops mail", "kind": "email"})

    message = render(context)

    assert message.subject.startswith('[Loopr] Test message from channel "Ops mail" (email)')
    assert "TEST" in message.text and "No monitor is down" in message.text
    assert message.payload["type"] == "channel.test"
    assert message.payload["data"]["monitor"] is None


def test_a_test_message_without_a_channel_name_is_still_marked_as_a_test():
    placeholder = {"id": None, "name": "test of channel Ops", "url": "", "status": "test"}
    context = make_context("test", monitor=placeholder, incident=None, details="No monitor changed state.")

    message = render(context)

    assert message.subject == "[Loopr] Test message from Loopr — nothing is down"
    # Receivers must not mistake the placeholder for a real monitor.
    assert message.payload["data"]["monitor"] is None
    assert message.payload["data"]["details"] == "No monitor changed state."


def test_the_html_body_escapes_everything_it_shows():
    monitor = {"id": 1, "name": "<script>alert(1)</script>", "url": "https://example.com/?a=1&b=<2>", "status": "down"}
    incident = dict(RESOLVED, resolved_at=None, cause={"kind": "keyword", "message": 'keyword "<b>" not found'})

    message = render(make_context("down", monitor=monitor, incident=incident))

    # No markup from the context survives; it is shown as text.
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html
    assert "<b>" not in message.html
    assert "a=1&amp;b=&lt;2&gt;" in message.html
    # The plain text shows it as typed.
    assert "<script>alert(1)</script>" in message.text


def test_a_newline_in_a_monitor_name_cannot_break_the_subject_line():
    monitor = {"id": 1, "name": "web\r\nBcc: everyone@example.com", "url": "", "status": "down"}

    subject = render(make_context("down", monitor=monitor)).subject

    assert "\n" not in subject and "\r" not in subject


def test_a_password_in_the_monitor_url_is_masked():
    monitor = {"id": 1, "name": "api", "url": "https://bot:hunter2@example.com/x", "status": "down"}

    message = render(make_context("down", monitor=monitor))

    # Alerts go to mailboxes and chat rooms: the password must not.
    for text in (message.subject, message.text, message.html, str(message.payload)):
        assert "hunter2" not in text
    assert message.payload["data"]["monitor"]["url"] == "https://bot:***@example.com/x"
    assert display_url("https://example.com/") == "https://example.com/"


def test_the_webhook_payload_follows_the_documented_schema():
    context = make_context("down")

    payload = render(context).payload

    assert payload["type"] == "monitor.down"
    assert payload["timestamp"] == "2026-11-22T02:28:00Z"
    data = payload["data"]
    assert set(data) == {"id", "event", "summary", "monitor", "incident", "details", "acknowledge_url"}
    assert data["id"] == context["id"]
    assert data["event"] == "down"
    assert data["summary"].startswith("DOWN: web")
    assert data["monitor"] == {"id": 1, "name": "web", "url": "https://example.com/health", "status": "down"}
    assert data["incident"] == {
        "id": 7,
        "started_at": "2026-11-22T01:23:10Z",
        "confirmed_at": "2026-11-22T01:24:00Z",
        "resolved_at": None,
        "duration_seconds": None,
        "cause": {"kind": "status", "message": "HTTP 503, expected 200-399"},
        "regions": ["eu-west"],
    }
    assert data["details"] is None


@pytest.mark.parametrize("event", ["down", "up", "degraded", "reminder", "flapping"])
def test_every_event_has_its_own_payload_type(event):
    assert render(make_context(event)).payload["type"] == f"monitor.{event}"


def test_an_unknown_event_is_refused():
    with pytest.raises(ValueError, match="unknown event"):
        render(make_context("exploded"))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "less than a second"),
        (0.4, "less than a second"),
        (45, "45 s"),
        (60, "1 min"),
        (252, "4 min 12 s"),
        (3600, "1 h"),
        (3605, "1 h"),  # the seconds are noise beside the hour
        (3900, "1 h 5 min"),
        (90061, "1 d 1 h"),
        (-5, "less than a second"),
        (None, "an unknown time"),
    ],
)
def test_durations_read_like_a_person_would_say_them(seconds, expected):
    assert format_duration(seconds) == expected
