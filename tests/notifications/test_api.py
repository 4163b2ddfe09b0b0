from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from notifications.models import Channel, DeliveryAttempt, Notification
from tests.factories import ChannelFactory, IncidentFactory, MonitorFactory, NotificationFactory

pytestmark = pytest.mark.django_db

CHANNELS = "/api/v1/channels/"
NOTIFICATIONS = "/api/v1/notifications/"
HUGE = 10**30

# Field names scripts rely on: renaming one breaks them.
CHANNEL_FIELDS = {"id", "name", "kind", "target", "is_default", "enabled", "disabled_reason", "notify_degraded",
                  "reminder_interval", "created_at"}
NOTIFICATION_FIELDS = {"id", "channel", "incident", "monitor", "event", "status", "attempts", "last_error",
                       "created_at", "sent_at", "next_attempt_at", "delivery_attempts"}
ATTEMPT_FIELDS = {"at", "outcome", "ok", "status_code", "reply", "error", "duration_ms"}


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    # The plugin defaults to "localhost", which may resolve to ::1 first.
    return "127.0.0.1", 0


@pytest.fixture
def receiver(httpserver, settings):
    """A real webhook receiver on 127.0.0.1, which Loopr may reach for this test."""
    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = True
    return httpserver


def create_webhook(api, url: str = "https://hooks.example.com/loopr") -> dict:
    response = api.post(CHANNELS, {"name": "hook", "kind": "webhook", "target": url}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


# --- channels -------------------------------------------------------------------


def test_a_user_creates_an_email_channel_and_reads_it_back_with_the_documented_fields(api, user):
    response = api.post(CHANNELS, {"name": "ops", "kind": "email", "target": " ops@example.com ",
                                   "is_default": True, "notify_degraded": True, "reminder_interval": 3600},
                        format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert CHANNEL_FIELDS <= created.keys()
    # Stored as sent (the address trimmed), owned by the caller, and no secret for email.
    channel = Channel.objects.get(pk=created["id"])
    assert (channel.owner, channel.target, channel.is_default, channel.secret) == (user, "ops@example.com", True, "")
    assert "secret" not in created or created["secret"] == ""
    fetched = api.get(f"{CHANNELS}{channel.pk}/").json()
    assert (fetched["kind"], fetched["target"], fetched["reminder_interval"]) == ("email", "ops@example.com", 3600)


@pytest.mark.parametrize("kind", ["webhook", "slack", "discord"])
def test_every_url_kind_of_channel_can_be_created(api, kind):
    response = api.post(CHANNELS, {"name": kind, "kind": kind, "target": "https://hooks.example.com/x"},
                        format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["kind"] == kind


def test_a_webhooks_secret_is_in_the_creation_answer_and_nowhere_else(api):
    created = create_webhook(api)
    # Shown once, in Standard Webhooks form, and what the channel signs with.
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 20
    assert Channel.objects.get(pk=created["id"]).secret == created["secret"]
    # Never again: not when listed, read, edited or tested.
    url = f"{CHANNELS}{created['id']}/"
    answers = [
        api.get(CHANNELS).content, api.get(url).content,
        api.patch(url, {"name": "renamed"}, format="json").content,
        api.put(url, {"name": "put", "kind": "webhook", "target": "https://hooks.example.com/b"},
                format="json").content,
    ]
    for body in answers:
        assert b"whsec_" not in body and b'"secret"' not in body


def test_a_secret_sent_by_the_client_is_ignored(api):
    response = api.post(CHANNELS, {"name": "hook", "kind": "webhook", "target": "https://hooks.example.com/",
                                   "secret": "whsec_chosenbyme"}, format="json")
    assert response.status_code == 201
    assert response.json()["secret"] != "whsec_chosenbyme"
    channel = Channel.objects.get()
    api.patch(f"{CHANNELS}{channel.pk}/", {"secret": "whsec_chosenbyme"}, format="json")
    channel.refresh_from_db()
    assert channel.secret == response.json()["secret"]


def test_rotating_the_secret_returns_a_new_one_and_the_old_one_stops_working(api):
    created = create_webhook(api)
    response = api.post(f"{CHANNELS}{created['id']}/rotate-secret/")
    assert response.status_code == 200, response.json()
    rotated = response.json()["secret"]
    assert rotated.startswith("whsec_") and rotated != created["secret"]
    assert Channel.objects.get(pk=created["id"]).secret == rotated


def test_only_webhooks_have_a_secret_to_rotate(api, user):
    channel = ChannelFactory(owner=user, kind="email", target="ops@example.com")
    response = api.post(f"{CHANNELS}{channel.pk}/rotate-secret/")
    assert response.status_code == 400 and "kind" in response.json()
    channel.refresh_from_db()
    assert channel.secret == ""


@pytest.mark.parametrize(
    "kind, target",
    [
        ("email", "not-an-email"),
        ("email", "ops@"),
        ("email", "@example.com"),
        ("email", "ops@example.com, evil@example.com"),
        ("email", "ops@example.com\r\nBcc: evil@example.com"),
        ("email", "https://example.com/"),
        ("email", ""),
        ("email", "a" * 250 + "@example.com"),
        ("webhook", "ftp://example.com/hook"),
        ("webhook", "file:///etc/passwd"),
        ("webhook", "gopher://example.com/"),
        ("webhook", "javascript:alert(1)"),
        ("webhook", "example.com/hook"),
        ("webhook", "http://"),
        ("webhook", "http://user:pw@example.com/"),
        ("webhook", "http://exa mple.com/"),
        ("webhook", "http://example.com:99999/"),
        ("webhook", "ops@example.com"),
        ("slack", "ftp://hooks.slack.com/services/x"),
        ("discord", "file:///tmp/x"),
    ],
    ids=repr,
)
def test_a_bad_target_is_a_400_naming_target(api, kind, target):
    response = api.post(CHANNELS, {"name": "bad", "kind": kind, "target": target}, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["target"]
    assert not Channel.objects.exists()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"kind": "sms"}, "kind"),
        ({"kind": None}, "kind"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"target": None}, "target"),
        ({"target": ["ops@example.com"]}, "target"),
        ({"reminder_interval": 10}, "reminder_interval"),
        ({"reminder_interval": -1}, "reminder_interval"),
        ({"reminder_interval": HUGE}, "reminder_interval"),
        ({"is_default": "maybe"}, "is_default"),
    ],
    ids=repr,
)
def test_a_bad_channel_is_a_400_naming_the_field(api, change, field):
    response = api.post(CHANNELS, {"name": "ops", "kind": "email", "target": "ops@example.com", **change},
                        format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_a_channels_kind_cannot_change(api, user):
    channel = ChannelFactory(owner=user, kind="email", target="ops@example.com")
    response = api.patch(f"{CHANNELS}{channel.pk}/", {"kind": "webhook", "target": "https://example.com/"},
                         format="json")
    assert response.status_code == 400 and "kind" in response.json()
    # The same kind again is no change, so it is fine (a PUT sends it).
    assert api.patch(f"{CHANNELS}{channel.pk}/", {"kind": "email"}, format="json").status_code == 200


def test_a_new_target_is_checked_against_the_channels_kind(api, user):
    channel = ChannelFactory(owner=user, kind="email", target="ops@example.com")
    response = api.patch(f"{CHANNELS}{channel.pk}/", {"target": "https://example.com/"}, format="json")
    assert response.status_code == 400 and "target" in response.json()
    channel.refresh_from_db()
    assert channel.target == "ops@example.com"


def test_switching_a_disabled_channel_back_on_clears_the_reason(api, user):
    channel = ChannelFactory(owner=user)
    channel.disable("HTTP 410 Gone")
    body = api.get(f"{CHANNELS}{channel.pk}/").json()
    assert (body["enabled"], body["disabled_reason"]) == (False, "HTTP 410 Gone")
    body = api.patch(f"{CHANNELS}{channel.pk}/", {"enabled": True}, format="json").json()
    assert (body["enabled"], body["disabled_reason"]) == (True, "")


def test_a_user_lists_only_their_own_channels(api, user, other_user):
    mine = ChannelFactory(owner=user)
    ChannelFactory(owner=other_user)
    assert [c["id"] for c in api.get(CHANNELS).json()["results"]] == [mine.pk]


@pytest.mark.parametrize(
    "method, suffix, data",
    [
        ("get", "", None),
        ("patch", "", {"name": "hijacked"}),
        ("put", "", {"name": "hijacked", "kind": "email", "target": "me@example.com"}),
        ("delete", "", None),
        ("post", "test/", None),
        ("post", "rotate-secret/", None),
    ],
)
def test_another_users_channel_is_a_404(api, other_user, method, suffix, data):
    theirs = ChannelFactory(owner=other_user, name="theirs", kind="webhook", target="https://example.com/",
                            secret="whsec_dGhlaXJz")
    response = getattr(api, method)(f"{CHANNELS}{theirs.pk}/{suffix}", data, format="json")
    assert response.status_code == 404
    # Nothing about it leaks, and nothing about it changes or is sent.
    assert "theirs" not in response.content.decode() and "whsec_" not in response.content.decode()
    theirs.refresh_from_db()
    assert (theirs.name, theirs.secret) == ("theirs", "whsec_dGhlaXJz")
    assert not Notification.objects.exists()


# --- test messages ----------------------------------------------------------------


def test_a_test_message_reaches_a_real_receiver_and_is_recorded_once(api, user, receiver):
    receiver.expect_request("/hook", method="POST").respond_with_data("thanks", status=200)
    channel = ChannelFactory(owner=user, kind="webhook", target=receiver.url_for("/hook"))
    response = api.post(f"{CHANNELS}{channel.pk}/test/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["ok"], body["status"], body["status_code"], body["error"]) == (True, "sent", 200, "")
    # The receiver got one clearly marked test message.
    (request, _), = receiver.log
    payload = json.loads(request.data)
    assert payload["type"] == "channel.test" and payload["data"]["event"] == "test"
    assert request.headers["webhook-id"] == body["notification"]
    # The delivery log has it: one attempt, sent.
    notification = Notification.objects.get(pk=body["notification"])
    assert (notification.event, notification.status, notification.attempts) == ("test", "sent", 1)
    assert notification.delivery_attempts.get().status_code == 200


def test_test_messages_are_rate_limited_per_user(api, user, receiver):
    receiver.expect_request("/hook", method="POST").respond_with_data("thanks", status=200)
    channel = ChannelFactory(owner=user, kind="webhook", target=receiver.url_for("/hook"))
    codes = [api.post(f"{CHANNELS}{channel.pk}/test/").status_code for _ in range(11)]
    # Each one holds a request and reaches a third party: ten a minute, then 429.
    assert codes == [200] * 10 + [429]
    assert len(receiver.log) == 10


def test_a_failed_test_message_fails_at_once_and_is_never_retried(api, user, receiver):
    receiver.expect_request("/hook", method="POST").respond_with_data("boom", status=500)
    channel = ChannelFactory(owner=user, kind="webhook", target=receiver.url_for("/hook"))
    response = api.post(f"{CHANNELS}{channel.pk}/test/")
    # The API call worked; the body says the receiver did not.
    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["status"], body["status_code"]) == (False, "failed", 500)
    assert "500" in body["error"] and body["reply"] == "boom"
    # Failed for good after one attempt: a 500 would be retried for a real alert, not for a test.
    notification = Notification.objects.get(pk=body["notification"])
    assert (notification.status, notification.attempts) == ("failed", 1)
    assert DeliveryAttempt.objects.filter(notification=notification).count() == 1
    assert len(receiver.log) == 1
    listed = api.get(f"{NOTIFICATIONS}{notification.pk}/").json()
    assert listed["next_attempt_at"] is None and len(listed["delivery_attempts"]) == 1
    # The channel stays enabled: a failed test says nothing about the future.
    channel.refresh_from_db()
    assert channel.enabled


def test_a_test_message_to_a_private_address_is_refused_unless_allowed(api, user, httpserver, settings):
    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = False
    httpserver.expect_request("/hook").respond_with_data("ok")
    channel = ChannelFactory(owner=user, kind="webhook", target=httpserver.url_for("/hook"))
    body = api.post(f"{CHANNELS}{channel.pk}/test/").json()
    assert body["ok"] is False and body["status"] == "failed" and body["error"]
    assert len(httpserver.log) == 0


# --- notifications (the delivery log) ---------------------------------------------


def test_notifications_list_their_delivery_attempts(api, user):
    notification = NotificationFactory(channel=ChannelFactory(owner=user), status="sent", attempts=2)
    DeliveryAttempt.objects.create(notification=notification, outcome="failed", ok=False, status_code=503,
                                   error="HTTP 503")
    DeliveryAttempt.objects.create(notification=notification, outcome="delivered", ok=True, status_code=200,
                                   reply="ok")
    body = api.get(NOTIFICATIONS).json()
    (listed,) = body["results"]
    assert NOTIFICATION_FIELDS <= listed.keys()
    assert (listed["id"], listed["status"], listed["attempts"]) == (str(notification.pk), "sent", 2)
    # Who was told, when, and what came back: every attempt, oldest first.
    assert ATTEMPT_FIELDS <= listed["delivery_attempts"][0].keys()
    assert [(a["outcome"], a["ok"], a["status_code"]) for a in listed["delivery_attempts"]] == [
        ("failed", False, 503), ("delivered", True, 200)]
    assert api.get(f"{NOTIFICATIONS}{notification.pk}/").json()["delivery_attempts"] == listed["delivery_attempts"]


def test_a_pending_notification_says_when_it_is_tried_next(api, user):
    notification = NotificationFactory(channel=ChannelFactory(owner=user), attempts=1, last_error="HTTP 503")
    body = api.get(f"{NOTIFICATIONS}{notification.pk}/").json()
    assert body["status"] == "pending" and body["next_attempt_at"] and body["last_error"] == "HTTP 503"


@pytest.mark.parametrize("query, expected", [
    ("channel={email}", {"down-email"}),
    ("monitor={monitor}", {"down-email", "up-hook"}),
    ("incident={incident}", {"down-email"}),
    ("event=up", {"up-hook"}),
    ("status=failed", {"up-hook"}),
    ("status=sent&event=down", set()),
])
def test_notifications_filter_by_channel_monitor_incident_event_and_status(api, user, query, expected):
    email, hook = ChannelFactory(owner=user), ChannelFactory(owner=user, kind="webhook", target="https://x.example/")
    monitor = MonitorFactory(owner=user)
    incident = IncidentFactory(monitor=monitor)
    NotificationFactory(channel=email, monitor=monitor, incident=incident, event="down", context={"n": "down-email"})
    NotificationFactory(channel=hook, monitor=monitor, event="up", status="failed", context={"n": "up-hook"})
    NotificationFactory(channel=hook, monitor=None, event="test", status="sent", context={"n": "test-hook"})
    response = api.get(f"{NOTIFICATIONS}?" + query.format(email=email.pk, monitor=monitor.pk, incident=incident.pk))
    assert response.status_code == 200, response.json()
    names = {Notification.objects.get(pk=n["id"]).context["n"] for n in response.json()["results"]}
    assert names == expected


def test_another_users_notifications_are_neither_listed_nor_readable(api, other_user):
    theirs = NotificationFactory(channel=ChannelFactory(owner=other_user))
    assert api.get(NOTIFICATIONS).json()["results"] == []
    assert api.get(f"{NOTIFICATIONS}{theirs.pk}/").status_code == 404
    # Filtering by their channel finds nothing rather than telling it exists.
    assert api.get(f"{NOTIFICATIONS}?channel={theirs.channel_id}").json()["results"] == []


def test_notifications_are_read_only(api, user):
    notification = NotificationFactory(channel=ChannelFactory(owner=user))
    assert api.post(NOTIFICATIONS, {}, format="json").status_code == 405
    assert api.patch(f"{NOTIFICATIONS}{notification.pk}/", {"status": "sent"}, format="json").status_code == 405
    assert api.delete(f"{NOTIFICATIONS}{notification.pk}/").status_code == 405


# --- never a 500 ----------------------------------------------------------------------

WEIRD_VALUES = [None, "", "abc", "\x00", "x" * 5000, ["a"], {"a": "b"}, True, -1, 1.5, -HUGE, HUGE]
CHANNEL_FIELDS_WRITTEN = ["name", "kind", "target", "is_default", "enabled", "notify_degraded", "reminder_interval",
                          "secret", "disabled_reason"]


def test_no_value_of_any_channel_field_makes_the_api_fail_with_a_500(api, user):
    channel = ChannelFactory(owner=user, kind="webhook", target="https://example.com/")
    valid = {"name": "hook", "kind": "webhook", "target": "https://example.com/"}
    failures = []
    for field in CHANNEL_FIELDS_WRITTEN:
        for value in WEIRD_VALUES:
            for method, url in [("post", CHANNELS), ("patch", f"{CHANNELS}{channel.pk}/")]:
                response = getattr(api, method)(url, {**valid, field: value}, format="json")
                if response.status_code >= 500:
                    failures.append((method, field, value, response.status_code))
    assert failures == []


def test_no_form_field_makes_the_channel_api_fail_with_a_500(api):
    valid = {"name": "ops", "kind": "email", "target": "ops@example.com"}
    failures = []
    for field in CHANNEL_FIELDS_WRITTEN:
        for value in ["", "abc", "\x00", "[" * 10_000, "null", "1e999", str(HUGE)]:
            response = api.post(CHANNELS, {**valid, field: value}, format="multipart")
            if response.status_code >= 500:
                failures.append((field, value[:20], response.status_code))
    assert failures == []


@pytest.mark.parametrize(
    "path",
    [
        "channels/abc/", "channels/-1/", "channels/1.5/", f"channels/{HUGE}/", "channels/%00/",
        "channels/?kind=bogus", "channels/?enabled=maybe", "channels/?page=abc",
        "notifications/abc/", "notifications/00000000-0000-0000-0000-000000000000/", f"notifications/{HUGE}/",
        "notifications/?channel=abc", "notifications/?channel=1.5", f"notifications/?channel={HUGE}",
        "notifications/?channel=-1", "notifications/?monitor=%00", "notifications/?incident=1e999",
        "notifications/?event=bogus", "notifications/?status=bogus", "notifications/?page=99999",
    ],
)
def test_no_url_makes_the_notifications_api_fail_with_a_500(api, user, path):
    NotificationFactory(channel=ChannelFactory(owner=user))
    response = api.get("/api/v1/" + path)
    assert response.status_code in (200, 400, 404)


@pytest.mark.parametrize("suffix", ["test/", "rotate-secret/"])
@pytest.mark.parametrize("path", ["channels/abc/", f"channels/{HUGE}/"])
def test_actions_on_a_malformed_channel_id_are_a_404(api, path, suffix):
    assert api.post("/api/v1/" + path + suffix).status_code == 404


# --- discovery -------------------------------------------------------------------


def test_the_api_root_lists_the_alerting_resources(api):
    assert {"channels", "notifications", "incidents", "maintenance-windows"} <= api.get("/api/v1/").json().keys()


@pytest.mark.parametrize("path", ["channels/", "channels/{channel}/", "notifications/",
                                  "notifications/{notification}/"])
def test_the_browsable_api_renders_the_alerting_pages(user, path):
    notification = NotificationFactory(channel=ChannelFactory(owner=user))
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/v1/" + path.format(channel=notification.channel_id, notification=notification.pk),
                          HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
