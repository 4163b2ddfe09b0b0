from __future__ import annotations

import json
import ssl
import time
from email.utils import formatdate

import pytest
import trustme
from standardwebhooks.webhooks import Webhook
from werkzeug import Response

from notifications.render import render
from notifications.transports import generate_secret, transport_for
from notifications.transports.discord import MAX_CONTENT, MAX_DESCRIPTION, MAX_TITLE, RED
from tests.notifications.conftest import make_context, read_request_head


@pytest.fixture(autouse=True)
def _receivers_are_on_loopback(settings):
    # Every receiver here listens on 127.0.0.1, which production refuses.
    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = True


def _received(httpserver):
    [(request, _response)] = httpserver.log
    return request


def test_a_delivered_webhook_carries_a_signature_that_verifies(httpserver, message):
    httpserver.expect_request("/hook", method="POST").respond_with_data("thanks", status=200)
    secret = generate_secret()

    delivery = transport_for("webhook", httpserver.url_for("/hook"), secret).send(message)

    assert delivery.ok, delivery.error
    assert delivery.status_code == 200
    assert delivery.reply == "thanks"
    request = _received(httpserver)
    # The receiver can check the body came from us, untouched.
    verified = Webhook(secret).verify(request.get_data(), dict(request.headers))
    assert verified == message.payload
    assert request.headers["webhook-id"] == message.id
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "Loopr-Webhook/1"
    # And a different secret does not verify it.
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(generate_secret()).verify(request.get_data(), dict(request.headers))


def test_a_retry_carries_the_same_webhook_id(httpserver, message):
    httpserver.expect_request("/hook").respond_with_data("ok")
    transport = transport_for("webhook", httpserver.url_for("/hook"), generate_secret())

    transport.send(message)
    transport.send(message)

    # The receiver can drop the second copy by its id.
    ids = [request.headers["webhook-id"] for request, _ in httpserver.log]
    assert ids == [message.id, message.id]


def test_generated_secrets_are_standard_webhooks_secrets():
    secret = generate_secret()

    assert secret.startswith("whsec_")
    assert len(secret) >= len("whsec_") + 32  # at least 24 random bytes in base64
    assert secret != generate_secret()


def test_a_malformed_secret_fails_permanently_before_sending(httpserver, message):
    delivery = transport_for("webhook", httpserver.url_for("/hook"), "whsec_not*base64!").send(message)

    assert not delivery.ok and delivery.permanent
    assert "invalid signing secret" in delivery.error
    assert httpserver.log == []


def test_a_server_error_is_retried(httpserver, message):
    httpserver.expect_request("/hook").respond_with_data("database on fire", status=500)

    delivery = transport_for("webhook", httpserver.url_for("/hook")).send(message)

    assert not delivery.ok
    assert not delivery.permanent
    assert delivery.status_code == 500
    assert delivery.reply == "database on fire"
    assert delivery.error == "HTTP 500 Internal Server Error"


def test_gone_is_permanent_and_disables_the_channel(httpserver, message):
    httpserver.expect_request("/hook").respond_with_data("", status=410)

    delivery = transport_for("webhook", httpserver.url_for("/hook")).send(message)

    assert not delivery.ok
    assert delivery.permanent
    assert delivery.disable_channel


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_a_client_error_is_permanent(httpserver, message, status):
    httpserver.expect_request("/hook").respond_with_data("no", status=status)

    delivery = transport_for("webhook", httpserver.url_for("/hook")).send(message)

    assert not delivery.ok
    assert delivery.permanent
    assert not delivery.disable_channel
    assert delivery.status_code == status


def test_request_timeout_is_retried(httpserver, message):
    httpserver.expect_request("/hook").respond_with_data("", status=408)

    delivery = transport_for("webhook", httpserver.url_for("/hook")).send(message)

    assert not delivery.ok and not delivery.permanent


def test_too_many_requests_honours_retry_after_in_seconds(httpserver, message):
    httpserver.expect_request("/hook").respond_with_data("slow down", status=429, headers={"Retry-After": "7"})

    delivery = transport_for("webhook", httpserver.url_for("/hook")).send(message)

    assert not delivery.ok
    assert not delivery.permanent
    assert delivery.retry_after == 7


def test_unavailable_honours_retry_after_as_an_http_date(httpserver, message):
    when = formatdate(time.time() + 120, usegmt=True)
    httpserver.expect_request("/hook").respond_with_data("", status=503, headers={"Retry-After": when})

    delivery = transport_for("webhook", httpserver.url_for("/hook")).send(message)

    assert not delivery.ok and not delivery.permanent
    assert 115 <= delivery.retry_after <= 121


def test_a_huge_retry_after_is_capped_at_an_hour(httpserver, message):
    httpserver.expect_request("/hook").respond_with_data("", status=429, headers={"Retry-After": "864000"})

    delivery = transport_for("webhook", httpserver.url_for("/hook")).send(message)

    assert delivery.retry_after == 3600


def test_a_redirect_is_not_followed_and_fails_permanently(httpserver, message):
    httpserver.expect_request("/hook").respond_with_response(
        Response("", status=302, headers={"Location": httpserver.url_for("/elsewhere")})
    )
    httpserver.expect_request("/elsewhere").respond_with_data("ok")

    delivery = transport_for("webhook", httpserver.url_for("/hook")).send(message)

    assert not delivery.ok
    assert delivery.permanent
    assert delivery.status_code == 302
    assert "redirects are not followed" in delivery.error
    assert "/elsewhere" in delivery.error
    # Only the first URL was asked.
    assert [request.path for request, _ in httpserver.log] == ["/hook"]


def test_a_receiver_that_never_answers_is_cut_off_at_the_deadline(raw_receiver, message):
    def hang(conn, receiver):
        read_request_head(conn)
        receiver.stop.wait(10)

    receiver = raw_receiver(hang)
    started = time.monotonic()

    delivery = transport_for("webhook", receiver.url, options={"timeout": 1}).send(message)

    assert time.monotonic() - started < 1 + 1
    assert not delivery.ok
    assert not delivery.permanent
    assert "within 1 s" in delivery.error


def test_a_receiver_that_trickles_its_headers_is_cut_off_at_the_deadline(raw_receiver, message):
    # One byte every 50 ms never trips a per-read timeout; only the total does.
    def trickle(conn, receiver):
        read_request_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not receiver.stop.wait(0.05):
            conn.sendall(b"a")

    receiver = raw_receiver(trickle)
    started = time.monotonic()

    delivery = transport_for("webhook", receiver.url, options={"timeout": 1}).send(message)

    assert time.monotonic() - started < 1 + 1
    assert not delivery.ok
    assert not delivery.permanent


def test_a_huge_answer_is_not_read_to_the_end(raw_receiver, message):
    size = 10 * 1024 * 1024

    def flood(conn, receiver):
        read_request_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"x" * 65536
        for _ in range(size // len(block)):
            conn.sendall(block)
            receiver.bytes_sent += len(block)
        receiver.finished_sending = True

    receiver = raw_receiver(flood)
    started = time.monotonic()

    delivery = transport_for("webhook", receiver.url).send(message)

    # The status decides; the body is cut short and only a snippet kept.
    assert delivery.ok
    assert len(delivery.reply) <= 500
    assert time.monotonic() - started < 2
    time.sleep(0.2)  # let the receiver notice we hung up
    assert not receiver.finished_sending
    assert receiver.bytes_sent < size


def test_a_receiver_with_an_untrusted_certificate_is_retried(raw_receiver, message):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_context)

    def handshake(conn, receiver):
        with server_context.wrap_socket(conn, server_side=True) as tls:
            read_request_head(tls)

    receiver = raw_receiver(handshake)

    delivery = transport_for("webhook", receiver.url.replace("http:", "https:")).send(message)

    # Certificates get fixed; the retries give the receiver's owner time to.
    assert not delivery.ok and not delivery.permanent
    assert "TLS error" in delivery.error
    assert "certificate verify failed" in delivery.error


def test_a_refused_connection_is_retried(raw_receiver, message):
    receiver = raw_receiver(lambda conn, receiver: None)
    receiver.close()  # nothing listens on the port any more

    delivery = transport_for("webhook", receiver.url).send(message)

    assert not delivery.ok and not delivery.permanent
    assert "connection refused" in delivery.error


def test_a_private_address_is_refused_before_anything_is_sent(httpserver, settings, message):
    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = False
    httpserver.expect_request("/hook").respond_with_data("ok")

    delivery = transport_for("webhook", httpserver.url_for("/hook")).send(message)

    assert not delivery.ok
    assert delivery.permanent
    assert "resolves to a private address" in delivery.error
    assert "LOOPR_WEBHOOK_ALLOW_PRIVATE=true" in delivery.error
    assert httpserver.log == []


def test_private_addresses_are_refused_when_the_setting_is_absent(httpserver, settings, message):
    del settings.LOOPR_WEBHOOK_ALLOW_PRIVATE
    url = httpserver.url_for("/hook").replace("127.0.0.1", "localhost")  # through DNS this time

    delivery = transport_for("webhook", url).send(message)

    assert delivery.permanent and "private address" in delivery.error
    assert httpserver.log == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://10.0.0.8/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",  # CGNAT
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_internal_ranges_are_refused(settings, message, url):
    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = False

    delivery = transport_for("webhook", url, options={"timeout": 2}).send(message)

    assert delivery.permanent
    assert "private address" in delivery.error


def test_an_invalid_target_fails_permanently(message):
    delivery = transport_for("webhook", "ftp://example.com/hook").send(message)

    assert delivery.permanent
    assert "invalid target" in delivery.error


# --- Slack and Discord -------------------------------------------------------


def test_slack_gets_text_and_a_mrkdwn_section(httpserver):
    monitor = {"id": 1, "name": "web <!channel>", "url": "https://example.com/", "status": "down"}
    message = render(make_context("down", monitor=monitor))
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")

    delivery = transport_for("slack", httpserver.url_for("/slack")).send(message)

    assert delivery.ok, delivery.error
    request = _received(httpserver)
    assert "webhook-signature" not in request.headers  # Slack does not sign
    document = request.get_json()
    assert set(document) == {"text", "blocks"}
    assert document["text"].startswith("[Loopr] DOWN: web")
    [section] = document["blocks"]
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].startswith("*web &lt;!channel&gt; is DOWN.*")
    assert "HTTP 503, expected 200-399" in section["text"]["text"]
    # A monitor name cannot mention @channel.
    assert "<!channel>" not in json.dumps(document)


def test_discord_gets_content_and_a_coloured_embed(httpserver, message):
    httpserver.expect_request("/discord", method="POST").respond_with_data("", status=204)

    delivery = transport_for("discord", httpserver.url_for("/discord")).send(message)

    assert delivery.ok, delivery.error
    document = _received(httpserver).get_json()
    assert document["content"] == message.subject
    [embed] = document["embeds"]
    assert embed["title"] == "web is DOWN."
    assert "HTTP 503, expected 200-399" in embed["description"]
    assert embed["color"] == RED
    assert embed["timestamp"] == "2026-11-22T02:28:00+00:00"
    assert document["allowed_mentions"] == {"parse": []}


def test_discord_limits_are_kept_with_long_text(httpserver):
    monitor = {"id": 1, "name": "w" * 5000, "url": "https://example.com/" + "p" * 1900, "status": "down"}
    long_cause = {"kind": "keyword", "message": "c" * 5000}
    context = make_context("down", monitor=monitor)
    context["incident"]["cause"] = long_cause
    message = render(context)
    httpserver.expect_request("/discord").respond_with_data("", status=204)

    transport_for("discord", httpserver.url_for("/discord")).send(message)

    document = _received(httpserver).get_json()
    [embed] = document["embeds"]
    assert len(document["content"]) <= MAX_CONTENT
    assert len(embed["title"]) <= MAX_TITLE
    assert len(embed["description"]) <= MAX_DESCRIPTION
    assert embed["title"].endswith("…")


@pytest.mark.parametrize(("event", "colour"), [("up", 0x2ECC71), ("degraded", 0xE67E22), ("flapping", 0xE67E22)])
def test_discord_colours_follow_the_event(httpserver, event, colour):
    httpserver.expect_request("/discord").respond_with_data("", status=204)

    transport_for("discord", httpserver.url_for("/discord")).send(render(make_context(event)))

    assert _received(httpserver).get_json()["embeds"][0]["color"] == colour
