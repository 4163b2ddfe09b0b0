"""Every channel kind against a local fake of its provider (tests/notifications/providers.py),
which checks each request as the provider documents it and answers in the provider's own shapes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from notifications.render import render
from notifications.transports import transport_class_for, transport_for
from tests.notifications import providers as p
from tests.notifications.conftest import make_context

NAME = "shop <b>&\"' @channel 🚀"
ACK_URL = "https://loopr.example.com/ack/abc:def/"
EVENTS = ["down", "up", "degraded", "reminder", "flapping", "acknowledged", "tls_expiring", "test"]


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return "127.0.0.1", 0


def context(event: str) -> dict[str, Any]:
    """The event as the outbox would hand it over, about a monitor whose name tries every escape."""
    ctx = make_context(event, ack_url=ACK_URL if event in {"down", "reminder"} else "")
    ctx["monitor"]["name"] = NAME
    if event == "up":
        ctx["incident"].update(resolved_at="2026-11-22T02:28:00Z", duration_seconds=3890.0)
    if event in {"degraded", "flapping"}:
        ctx["incident"] = None
        ctx["details"] = "latency 1840 ms above the 1000 ms threshold"
    if event == "acknowledged":
        ctx["details"] = "by alice: on it"
    if event == "test":
        ctx.update(monitor={"id": None, "name": "test of channel ops", "url": "", "status": "test"}, incident=None,
                   channel={"name": "ops", "kind": "x"})
    return ctx


class Provider:
    def __init__(self, httpserver, settings, kind: str) -> None:
        base = httpserver.url_for("").rstrip("/")
        settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = True  # the fakes listen on 127.0.0.1
        settings.LOOPR_PAGERDUTY_URL = settings.LOOPR_OPSGENIE_URL = base
        settings.LOOPR_TELEGRAM_URL = settings.LOOPR_PUSHOVER_URL = base
        settings.LOOPR_OPSGENIE_EU_URL = base + "/eu"
        check, shapes, self.target, self.secret, config = {
            "pagerduty": (p.check_pagerduty, p.PAGERDUTY, p.ROUTING_KEY, "", {}),
            "opsgenie": (p.check_opsgenie, p.OPSGENIE, "us", p.GENIE_KEY, {}),
            "teams": (p.check_teams, p.TEAMS, f"{base}/workflows/abc/triggers/manual/paths/invoke", "", {}),
            "telegram": (p.check_telegram, p.TELEGRAM, "-1001234567890", p.BOT_TOKEN, {}),
            "ntfy": (p.check_ntfy, p.NTFY, f"{base}/alerts", p.NTFY_TOKEN, {}),
            "pushover": (p.check_pushover, p.PUSHOVER, p.PUSHOVER_USER, p.PUSHOVER_TOKEN, {"retry": 45}),
            "googlechat": (p.check_google_chat, p.GOOGLE_CHAT, f"{base}/v1/spaces/AAAA/messages?key=k3y&token=t0k",
                           "", {}),
            "mattermost": (p.check_slack_style, p.MATTERMOST, f"{base}/hooks/xyz", "", {}),
            "rocketchat": (p.check_slack_style, p.ROCKETCHAT, f"{base}/hooks/abc/def", "", {}),
            "matrix": (p.check_matrix, p.MATRIX, p.ROOM, p.MATRIX_TOKEN, {"homeserver": base}),
            "http": (p.check_anything, p.GENERIC, f"{base}/incoming", "Bearer s3cret", {
                "method": "PUT", "headers": {"X-Team": "ops"},
                "body": '{"title": "{{summary}}", "monitor": "{{monitor.name}}", "incident": "{{incident.id}}", '
                        '"regions": "{{incident.regions}}", "line": "#{{incident.id}} in {{incident.regions}}"}'}),
        }[kind]
        self.kind = kind
        self.config = transport_class_for(kind).clean_config(config)
        self.fake = p.Fake(check, **shapes)
        httpserver.expect_request(re.compile(".*")).respond_with_handler(self.fake)

    def send(self, event: str = "down", **overrides: Any):
        return transport_for(self.kind, self.target, self.secret, self.config).send(
            render({**context(event), **overrides}))


KINDS = ["pagerduty", "opsgenie", "teams", "telegram", "ntfy", "pushover", "googlechat", "mattermost", "rocketchat",
         "matrix", "http"]


@pytest.fixture
def provider(httpserver, settings):
    return lambda kind: Provider(httpserver, settings, kind)


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_delivers_every_event_in_the_format_its_provider_documents(provider, kind, event):
    fake = provider(kind)

    delivery = fake.send(event)

    # The fake found nothing to object to, and answered with its success.
    assert fake.fake.problems == []
    assert delivery.ok, delivery.error
    assert len(fake.fake.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_providers_refusal_is_a_permanent_failure_with_its_reason_kept(provider, kind):
    fake = provider(kind)
    fake.fake.mode = "refuse"

    delivery = fake.send("down")

    # A 4xx refusal will not change by retrying; the provider's reason is in the log.
    assert not delivery.ok and delivery.permanent
    status, body = fake.fake.refusal
    assert delivery.status_code == status
    assert json.loads(delivery.reply) == body


RETRY_AFTER = {"pagerduty": 30, "opsgenie": 12, "teams": 9, "telegram": 7, "ntfy": 5, "pushover": 60,
               "googlechat": 4, "mattermost": 3, "rocketchat": 3, "matrix": 2, "http": 2}


@pytest.mark.parametrize("kind", KINDS)
def test_a_429_is_retried_after_the_time_the_provider_asks_for(provider, kind):
    fake = provider(kind)
    fake.fake.mode = "rate_limit"

    delivery = fake.send("down")

    # Retried, not given up; when is read from Retry-After, or from the body
    # for Telegram (parameters.retry_after) and Matrix (retry_after_ms).
    assert not delivery.ok and not delivery.permanent
    assert delivery.status_code == 429
    assert delivery.retry_after == RETRY_AFTER[kind]


def test_the_ssrf_guard_covers_provider_kinds_too(provider, settings):
    fake = provider("teams")
    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = False

    delivery = fake.send("down")

    # Refused before connecting: nothing reached the (loopback) receiver.
    assert not delivery.ok and delivery.permanent
    assert "private address" in delivery.error
    assert fake.fake.requests == []


# --- each provider's idiom -------------------------------------------------------------


def test_pagerduty_opens_and_closes_one_incident_by_its_dedup_key(provider):
    fake = provider("pagerduty")

    for event in ("down", "reminder", "acknowledged", "up"):
        assert fake.send(event).ok

    events = fake.fake.documents
    # One PagerDuty incident: triggered, acknowledged and resolved by the same key.
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {"loopr-incident-7"}
    assert {e["routing_key"] for e in events} == {p.ROUTING_KEY}
    down = events[0]["payload"]
    assert down["severity"] == "critical" and NAME in down["summary"]
    assert events[0]["links"] == [{"href": ACK_URL, "text": "Acknowledge in Loopr"}]


def test_a_pagerduty_test_is_a_change_event_that_leaves_nothing_open(provider):
    fake = provider("pagerduty")

    assert fake.send("test").ok

    [(request, event)] = fake.fake.requests
    assert request.path == "/v2/change/enqueue"
    assert "event_action" not in event and "dedup_key" not in event


def test_opsgenie_creates_an_alert_by_alias_and_closes_it_on_recovery(provider):
    fake = provider("opsgenie")

    assert fake.send("down").ok
    assert fake.send("reminder").ok
    assert fake.send("up").ok

    (create, alert), (note, _), (close, _) = fake.fake.requests
    assert create.path == "/v2/alerts"
    assert alert["alias"] == "loopr-incident-7" and alert["priority"] == "P1"
    assert alert["message"].startswith("DOWN: shop <b>&\"' @channel 🚀")
    assert (note.path, close.path) == ("/v2/alerts/loopr-incident-7/notes", "/v2/alerts/loopr-incident-7/close")
    assert close.args["identifierType"] == "alias"


def test_an_eu_opsgenie_account_is_sent_to_the_eu_host(provider):
    fake = provider("opsgenie")
    fake.target = "eu"

    assert fake.send("down").ok

    assert fake.fake.requests[0][0].path == "/eu/v2/alerts"


def test_telegram_html_shows_the_name_exactly_and_links_only_the_acknowledgement(provider):
    fake = provider("telegram")

    assert fake.send("down").ok

    [message] = fake.fake.documents
    text, links, problem = p.telegram_text(message["text"])
    # As Telegram parses it: no stray markup, the name as typed, one link.
    assert problem == ""
    assert NAME in text
    assert links == [ACK_URL]
    assert message["chat_id"] == -1001234567890


def test_ntfy_priority_follows_the_event_and_the_token_is_a_bearer(provider):
    fake = provider("ntfy")

    for event in ("down", "reminder", "up", "test"):
        assert fake.send(event).ok

    assert [m["priority"] for m in fake.fake.documents] == [5, 4, 3, 2]
    assert {m["topic"] for m in fake.fake.documents} == {"alerts"}
    assert fake.fake.requests[0][0].headers["Authorization"] == f"Bearer {p.NTFY_TOKEN}"
    assert fake.fake.documents[0]["actions"][0]["url"] == ACK_URL
    # The title, in JSON, keeps the emoji a header would have mangled.
    assert NAME in fake.fake.documents[0]["title"]


def test_ntfy_without_a_token_sends_no_authorization(provider):
    fake = provider("ntfy")
    fake.secret = ""

    assert fake.send("down").ok

    assert "Authorization" not in fake.fake.requests[0][0].headers


def test_pushover_down_is_an_emergency_repeated_until_confirmed(provider):
    fake = provider("pushover")

    assert fake.send("down").ok
    assert fake.send("up").ok

    down, up = fake.fake.documents
    # Form-encoded, as Pushover documents its parameters.
    assert (down["priority"], down["retry"], down["expire"]) == ("2", "45", "3600")
    assert up["priority"] == "0" and "retry" not in up
    assert (down["user"], down["url"]) == (p.PUSHOVER_USER, ACK_URL)
    # HTML mode: the name escaped so that Pushover shows it as typed.
    assert "shop &lt;b&gt;&amp;" in down["message"]


def test_matrix_puts_with_the_notification_id_so_a_retry_is_not_posted_twice(provider):
    fake = provider("matrix")
    message = render(context("down"))
    transport = transport_for("matrix", fake.target, fake.secret, fake.config)

    assert transport.send(message).ok
    assert transport.send(message).ok

    paths = [request.path for request, _ in fake.fake.requests]
    assert paths[0] == paths[1] == f"/_matrix/client/v3/rooms/{p.ROOM}/send/m.room.message/{message.id}"
    body = fake.fake.documents[0]
    assert body["msgtype"] == "m.notice" and NAME in body["body"]
    assert "shop &lt;b&gt;&amp;&quot;&#x27;" in body["formatted_body"]


@pytest.mark.parametrize("kind", ["mattermost", "rocketchat"])
def test_chat_webhooks_never_turn_a_monitor_name_into_a_mention(provider, kind):
    fake = provider(kind)

    assert fake.send("down").ok

    sent = json.dumps(fake.fake.documents[0], ensure_ascii=False)
    assert "@channel" not in sent and "@\u200dchannel" in sent
    assert "<b>" not in sent


def test_google_chat_threads_an_incidents_messages_and_escapes_its_text(provider):
    fake = provider("googlechat")

    assert fake.send("down").ok
    assert fake.send("up").ok

    keys = {request.args["threadKey"] for request, _ in fake.fake.requests}
    assert keys == {"loopr-incident-7"}
    assert "&lt;b&gt;" in fake.fake.documents[0]["text"]


def test_teams_sends_an_adaptive_card_with_an_acknowledge_button(provider):
    fake = provider("teams")

    assert fake.send("down").ok

    card = fake.fake.documents[0]["attachments"][0]["content"]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Acknowledge", "url": ACK_URL}]
    assert card["body"][0]["color"] == "attention"
    # Markdown in the name is escaped, not rendered.
    assert "\\<b\\>" not in card["body"][0]["text"] and "shop <b>&" in card["body"][0]["text"]


def test_the_http_request_kind_fills_its_template_with_json_escaped_values(provider):
    fake = provider("http")

    assert fake.send("down").ok

    [(request, body)] = fake.fake.requests
    assert request.method == "PUT"
    assert request.headers["X-Team"] == "ops"
    assert request.headers["Authorization"] == "Bearer s3cret"
    # Quotes, angle brackets and emoji arrive as typed; a lone placeholder keeps its type.
    assert body["monitor"] == NAME
    assert body["incident"] == 7 and body["regions"] == ["eu-west"]
    assert body["line"] == '#7 in ["eu-west"]'
    assert body["title"].startswith("DOWN: ")


def test_the_http_request_kind_without_a_template_sends_the_webhook_payload(provider):
    fake = provider("http")
    fake.config = transport_class_for("http").clean_config({})

    assert fake.send("down").ok

    [(request, body)] = fake.fake.requests
    assert request.method == "POST"
    assert body["type"] == "monitor.down" and body["data"]["monitor"]["name"] == NAME
    assert body["data"]["acknowledge_url"] == ACK_URL
