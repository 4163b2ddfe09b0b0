"""Alerts through real processes: beat, central, probe and notify workers, a
real SMTP server (aiosmtpd) and real webhook receivers on 127.0.0.1."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from monitors.models import Incident, Monitor
from notifications.models import Channel, DeliveryAttempt, Notification
from tests.factories import MonitorFactory, RegionFactory, UserFactory
from tests.support.processes import wait_for

pytestmark = pytest.mark.e2e

FAST_RETRIES = {
    "LOOPR_NOTIFY_BACKOFF": "0.5,0.5,1,1,2",
    "LOOPR_NOTIFY_SWEEP_GRACE": "1",
    "LOOPR_WEBHOOK_ALLOW_PRIVATE": "true",
}


# --- a real SMTP server ------------------------------------------------------------


@dataclass
class Mailbox:
    messages: list = field(default_factory=list)
    refuse_first: int = 0  # answer 451 to this many DATA commands first
    hang_first: int = 0  # never answer this many DATA commands (the sender is killed meanwhile)
    data_commands: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        with self.lock:
            self.data_commands += 1
            attempt = self.data_commands
        if attempt <= self.hang_first:
            await asyncio.sleep(60)
            return "451 4.3.0 too late"
        if attempt <= self.hang_first + self.refuse_first:
            return "451 4.3.0 Try again later"
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 2.0.0 OK queued"

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(m["Subject"]) for m in self.messages]


@pytest.fixture
def smtp():
    import socket

    with socket.socket() as probe_port:  # aiosmtpd wants a concrete port
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    mailbox.port = port
    yield mailbox
    controller.stop()


# --- a real webhook receiver -------------------------------------------------------


@dataclass
class Receiver:
    statuses: list[int]
    requests: list[tuple[dict, bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receivers():
    made = []

    def make(*statuses: int) -> Receiver:
        receiver = Receiver(list(statuses))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.server.shutdown()


def start_system(processes, smtp_port: int | None = None, notify: bool = True, **env: str):
    env = {**FAST_RETRIES, **env}
    if smtp_port:
        env["EMAIL_URL"] = f"smtp://127.0.0.1:{smtp_port}"
    processes.central(**env)
    if notify:
        notify_worker(processes, **env)
    processes.probe("probe1", **env)
    wait_for(lambda: RegionFactory(name="local").is_live, timeout=60, message="a live region")
    processes.beat(**env)
    return env


def notify_worker(processes, name: str = "notify", **env: str):
    from tests.support.processes import CELERY

    return processes.start(name, [CELERY, "-A", "loopr", "worker", "--queues", "notify", "--hostname",
                                  f"{name}@%h", "--concurrency", "2", "--loglevel", "INFO"], **env)


def watched_monitor(target, channels, **fields) -> Monitor:
    owner = channels[0].owner
    fields.setdefault("retries", 1)
    monitor = MonitorFactory(owner=owner, url=target.url("/"), interval=1, timeout=0.8,
                             next_check_at=timezone.now(), **fields)
    monitor.channels.set(channels)
    return monitor


def status_of(monitor: Monitor) -> str:
    monitor.refresh_from_db()
    return monitor.status


# --- the tests ---------------------------------------------------------------------


def test_an_outage_sends_one_email_with_its_cause_and_the_recovery_one_with_its_duration_despite_a_451(
    processes, target, smtp
):
    owner = UserFactory(username="ops")
    mail = Channel.objects.create(owner=owner, name="ops", kind="email", target="ops@example.com")
    smtp.refuse_first = 1  # the first attempt of the down email meets a 451
    start_system(processes, smtp.port)
    monitor = watched_monitor(target, [mail])
    wait_for(lambda: status_of(monitor) == "up", timeout=30, message="up")

    target.behave(status=503)
    wait_for(lambda: len(smtp.messages) == 1, timeout=30, message="the down email")
    down = smtp.messages[0]
    assert "DOWN" in down["Subject"] and monitor.name in down["Subject"]
    assert "503" in down.get_body(("plain",)).get_content()
    # Two attempts in the log: the 451 and the delivery (recorded just after
    # the server's 250).
    wait_for(lambda: Notification.objects.get(event="down").status == "sent", timeout=10,
             message="the delivery recorded")
    attempts = DeliveryAttempt.objects.filter(notification__event="down").order_by("at")
    assert [(a.ok, a.status_code) for a in attempts] == [(False, 451), (True, attempts[1].status_code)]

    target.behave(status=200)
    wait_for(lambda: len(smtp.messages) == 2, timeout=30, message="the recovery email")
    up = smtp.messages[1]
    assert "UP" in up["Subject"]
    incident = Incident.objects.get(monitor=monitor)
    assert incident.resolved_at is not None
    assert re.search(r"back after \d+ (h|min|s)", up["Subject"]), up["Subject"]  # the outage's duration

    time.sleep(3)  # nothing more trickles in: exactly one of each
    assert len(smtp.messages) == 2
    assert Notification.objects.filter(status="sent").count() == 2


def test_a_webhook_is_retried_with_the_same_id_and_every_signature_verifies_and_a_410_disables_its_channel(
    processes, target, receivers
):
    owner = UserFactory(username="ops")
    flaky, gone = receivers(500, 500, 200), receivers(410)
    from notifications.transports.webhook import generate_secret

    hook = Channel.objects.create(owner=owner, name="flaky", kind="webhook", target=flaky.url,
                                  secret=generate_secret())
    dead = Channel.objects.create(owner=owner, name="gone", kind="webhook", target=gone.url,
                                  secret=generate_secret())
    target.behave(status=503)
    start_system(processes)
    monitor = watched_monitor(target, [hook, dead])

    wait_for(lambda: len(flaky.requests) == 3, timeout=40, message="three attempts")
    time.sleep(2)
    assert len(flaky.requests) == 3, "delivered means no further attempts"
    ids = {headers["webhook-id"] for headers, _ in flaky.requests}
    assert len(ids) == 1, "every retry carries the same webhook-id"
    verifier = Webhook(hook.secret)
    for headers, body in flaky.requests:
        payload = verifier.verify(body, headers)  # raises if the signature is wrong
        assert payload["data"]["event"] == "down" and payload["data"]["monitor"]["id"] == monitor.pk
    notification = Notification.objects.get(channel=hook)
    assert (notification.status, notification.attempts, str(notification.pk)) == ("sent", 3, ids.pop())

    # The receiver that answered 410 Gone: one attempt, failed, channel disabled.
    assert len(gone.requests) == 1
    dead.refresh_from_db()
    assert not dead.enabled and "410" in dead.disabled_reason
    assert Notification.objects.get(channel=dead).status == "failed"


def test_a_notification_whose_delivery_worker_was_killed_mid_send_is_sent_again_once_its_lease_runs_out(
    processes, target, smtp
):
    from django.conf import settings

    from notifications.services import LEASE_MARGIN
    from workers.schedule import SYSTEM_TASKS

    owner = UserFactory(username="ops")
    mail = Channel.objects.create(owner=owner, name="ops", kind="email", target="ops@example.com")
    smtp.hang_first = 1  # the first delivery never completes: its worker dies meanwhile
    env = start_system(processes, smtp.port, notify=False, LOOPR_BROKER_VISIBILITY_TIMEOUT="300")
    notify_worker(processes, **env)
    target.behave(status=503)
    monitor = watched_monitor(target, [mail])
    wait_for(lambda: smtp.data_commands == 1, timeout=30, message="the first delivery to start")
    # Written before a byte was sent: the log knows the receiver may have it.
    notification = Notification.objects.get(monitor=monitor, event="down")
    assert list(notification.delivery_attempts.values_list("outcome", flat=True)) == ["sending"]
    processes.kill("notify")
    # The broker still holds the killed worker's message; drop it so that
    # only the sweep can deliver (as when the task itself was lost).
    from loopr.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("notify")
    assert smtp.messages == []

    notify_worker(processes, name="notify2", **env)
    wait_for(lambda: len(smtp.messages) == 1, timeout=60, message="the sweep's delivery")
    time.sleep(4)
    assert len(smtp.messages) == 1, "delivered once"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 2)
    # Both attempts are in the log, the first marked interrupted, and the
    # second came once the first one's lease (the SMTP timeout and the
    # margin) ran out, at the next sweep: not minutes later.
    first, second = notification.delivery_attempts.order_by("at")
    assert (first.outcome, second.outcome) == ("interrupted", "delivered")
    sweep_period = next(every for _, task, every, _ in SYSTEM_TASKS if task == "notifications.sweep_notifications")
    resent_after = (second.at - first.at).total_seconds()
    assert resent_after < settings.EMAIL_TIMEOUT + LEASE_MARGIN + sweep_period + 3, resent_after
    # The same Message-ID as the attempt the receiver may have seen.
    assert smtp.messages[0]["Message-ID"].startswith(f"<loopr.{notification.pk}@")


def test_a_flapping_target_sends_one_flapping_alert_and_no_alert_per_flip(processes, target, receivers):
    owner = UserFactory(username="ops")
    receiver = receivers(200)
    hook = Channel.objects.create(owner=owner, name="hook", kind="webhook", target=receiver.url, secret="")
    start_system(processes)
    target.behave(status=200)
    monitor = watched_monitor(target, [hook], retries=0, flap_threshold=3, flap_window=600)
    wait_for(lambda: status_of(monitor) == "up", timeout=30, message="up")
    target.behave(cycle=(500, 200))  # every check flips the verdict
    wait_for(lambda: Notification.objects.filter(event="flapping").exists(), timeout=30,
             message="the flapping alert")
    time.sleep(6)  # several more flips
    assert monitor.status_changes.count() >= 6, "the target did flip"
    events = list(Notification.objects.order_by("created_at").values_list("event", flat=True))
    assert events.count("flapping") == 1
    # Before it was recognised: at most the flips up to the threshold alerted.
    assert events[events.index("flapping") + 1:] == []
    assert len(events) <= 4


def test_a_maintenance_window_holds_the_down_alert_shows_maintenance_and_alerts_when_it_ends(
    processes, target, receivers
):
    from datetime import timedelta

    from monitors.models import MaintenanceWindow

    owner = UserFactory(username="ops")
    receiver = receivers(200)
    hook = Channel.objects.create(owner=owner, name="hook", kind="webhook", target=receiver.url, secret="")
    monitor = watched_monitor(target, [hook])
    window = MaintenanceWindow.objects.create(owner=owner, name="deploy", kind="once",
                                              starts_at=timezone.now() - timedelta(minutes=1),
                                              ends_at=timezone.now() + timedelta(hours=1))
    window.monitors.add(monitor)
    target.behave(status=503)
    start_system(processes)

    # In the window from the start: the monitor shows maintenance, its checks
    # go on and are flagged, and nobody is told it is down.
    assert status_of(monitor) == "maintenance"
    wait_for(lambda: status_of(monitor) == "maintenance" and monitor.health == "down", timeout=40,
             message="maintenance with the target down")
    assert monitor.results.filter(in_maintenance=True).exists()
    assert not monitor.results.filter(in_maintenance=False).exists()
    time.sleep(2)
    assert not Notification.objects.exists() and receiver.requests == []

    # The window ends while the target is still down: the down alert goes out then.
    window.ends_at = timezone.now()
    window.save()
    wait_for(lambda: len(receiver.requests) == 1, timeout=40, message="the down alert after the window")
    assert status_of(monitor) == "down"
    rows = list(Notification.objects.values_list("event", "created_at", "context"))
    assert len(rows) == 1, rows
