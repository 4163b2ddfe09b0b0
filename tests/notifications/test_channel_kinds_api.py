"""Setting up the new channel kinds through the API: each kind's target,
options and secret are checked on the model (a 400 naming the field), and
secrets are write-only."""

from __future__ import annotations

import pytest

from notifications.models import Channel
from tests.notifications import providers as p

pytestmark = pytest.mark.django_db

CHANNELS = "/api/v1/channels/"


def create(api, **fields):
    return api.post(CHANNELS, {"name": "x", **fields}, format="json")


@pytest.mark.parametrize(("fields", "target"), [
    ({"kind": "pagerduty", "target": p.ROUTING_KEY}, p.ROUTING_KEY),
    ({"kind": "opsgenie", "target": " EU ", "secret": p.GENIE_KEY}, "eu"),
    ({"kind": "teams", "target": "https://example.webhook.office.com/webhookb2/x"}, None),
    ({"kind": "telegram", "target": "-1001234567890", "secret": p.BOT_TOKEN}, None),
    ({"kind": "ntfy", "target": "https://ntfy.sh/loopr-alerts"}, None),
    ({"kind": "pushover", "target": p.PUSHOVER_USER, "secret": p.PUSHOVER_TOKEN, "config": {"retry": 120}}, None),
    ({"kind": "googlechat", "target": "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=k&token=t"}, None),
    ({"kind": "mattermost", "target": "https://chat.example.com/hooks/xxx"}, None),
    ({"kind": "rocketchat", "target": "https://chat.example.com/hooks/a/b"}, None),
    ({"kind": "matrix", "target": p.ROOM, "secret": p.MATRIX_TOKEN,
      "config": {"homeserver": "https://matrix.example.org"}}, None),
    ({"kind": "http", "target": "https://api.example.com/alerts",
      "config": {"method": "PUT", "body": '{"text": "{{summary}}"}'}}, None),
])
def test_each_kind_is_created_with_its_target_options_and_secret(api, fields, target):
    response = create(api, **fields)

    assert response.status_code == 201, response.json()
    body = response.json()
    channel = Channel.objects.get(pk=body["id"])
    # Stored as its transport reads it, and the secret never comes back.
    assert channel.target == (target or fields["target"])
    assert channel.secret == fields.get("secret", "")
    assert body["has_secret"] is bool(fields.get("secret"))
    assert body["secret"] == ""
    if "config" in fields:
        assert fields["config"].items() <= channel.config.items()


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"kind": "pagerduty", "target": "short"}, "target", "PagerDuty routing key"),
    ({"kind": "opsgenie", "target": "asia", "secret": p.GENIE_KEY}, "target", "us or eu"),
    ({"kind": "opsgenie", "target": "us"}, "secret", "Opsgenie API integration key"),
    ({"kind": "telegram", "target": "-100123", "secret": "not-a-token"}, "secret", "Telegram bot token"),
    ({"kind": "telegram", "target": "chat/../../x", "secret": p.BOT_TOKEN}, "target", "Telegram chat id"),
    ({"kind": "ntfy", "target": "https://ntfy.sh/"}, "target", "topic"),
    ({"kind": "pushover", "target": p.PUSHOVER_USER, "secret": p.PUSHOVER_TOKEN, "config": {"retry": 10}},
     "config", "retry"),
    ({"kind": "pushover", "target": p.PUSHOVER_USER, "secret": p.PUSHOVER_TOKEN, "config": {"sound": "x"}},
     "config", "sound: not an option"),
    ({"kind": "matrix", "target": p.ROOM, "secret": p.MATRIX_TOKEN}, "config", "homeserver"),
    ({"kind": "matrix", "target": "#alias:example.org", "secret": p.MATRIX_TOKEN,
      "config": {"homeserver": "https://m.example.org"}}, "target", "Matrix room id"),
    ({"kind": "http", "target": "https://x.example.com/", "config": {"body": '{"id": {{monitor.id}}}'}},
     "config", "placeholders go inside strings"),
    ({"kind": "http", "target": "https://x.example.com/", "config": {"body": '{"a": "{{monitor.password}}"}'}},
     "config", "unknown placeholder(s) monitor.password"),
    ({"kind": "http", "target": "https://x.example.com/", "config": {"headers": {"Host": "evil"}}},
     "config", "Host is set by Loopr"),
    ({"kind": "http", "target": "https://x.example.com/", "config": {"headers": {"X-A": "a\r\nX-B: b"}}},
     "config", "one line"),
    ({"kind": "http", "target": "https://x.example.com/", "config": {"method": "TRACE"}}, "config", "method"),
    ({"kind": "slack", "target": "https://hooks.slack.com/x", "config": {"colour": "red"}}, "config", "colour"),
    ({"kind": "slack", "target": "https://hooks.slack.com/x", "secret": "zzz"}, "secret", "takes no secret"),
    ({"kind": "ntfy", "target": "https://ntfy.sh/a", "secret": "tk_a\nX-Evil: 1"}, "secret", "one line"),
])
def test_a_wrong_target_option_or_secret_is_a_400_naming_the_field(api, fields, field, words):
    response = create(api, **fields)

    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field], errors
    assert words in " ".join(errors[field])
    assert not Channel.objects.exists()


def test_an_update_without_the_secret_keeps_it_and_one_with_it_replaces_it(api):
    created = create(api, kind="telegram", target="-1001234567890", secret=p.BOT_TOKEN).json()
    url = f"{CHANNELS}{created['id']}/"

    renamed = api.patch(url, {"name": "on-call"}, format="json")
    assert renamed.status_code == 200, renamed.json()
    assert Channel.objects.get().secret == p.BOT_TOKEN
    new_token = "987654321:BBF_another-bot-token-abcdefghij"
    assert api.patch(url, {"secret": new_token}, format="json").status_code == 200
    assert Channel.objects.get().secret == new_token
    # Nowhere in what the API shows.
    listing = api.get(CHANNELS).content.decode()
    assert p.BOT_TOKEN not in listing and new_token not in listing
