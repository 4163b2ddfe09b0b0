"""Real servers on 127.0.0.1 for the transport tests: an SMTP server whose
answers a test can steer, and raw TCP receivers for misbehaving webhooks."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from notifications.render import render
from notifications.transports import Message


def free_port() -> int:
    # aiosmtpd's Controller cannot listen on port 0 (it connects to its own
    # port to check it started), so we ask the kernel for one first.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_context(event: str = "down", **overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "event": event,
        "occurred_at": "2026-11-22T02:28:00Z",
        "monitor": {"id": 1, "name": "web", "url": "https://example.com/health", "status": "down"},
        "incident": {
            "id": 7,
            "started_at": "2026-11-22T01:23:10Z",
            "confirmed_at": "2026-11-22T01:24:00Z",
            "resolved_at": None,
            "duration_seconds": None,
            "cause": {"kind": "status", "message": "HTTP 503, expected 200-399"},
            "regions": ["eu-west"],
        },
        "details": None,
    }
    context.update(overrides)
    return context


@pytest.fixture
def message() -> Message:
    return render(make_context())


# --- SMTP --------------------------------------------------------------------


class SteerableHandler:
    """Accepts mail, or answers as a test tells it to."""

    def __init__(self) -> None:
        self.mode = "accept"  # "accept" | "defer_first_data" | "reject_rcpt"
        self.deferred = False
        self.messages: list[bytes] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if self.mode == "reject_rcpt":
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self.mode == "defer_first_data" and not self.deferred:
            self.deferred = True
            return "451 4.3.0 try again later"
        self.messages.append(envelope.content)
        return "250 2.0.0 queued"


@pytest.fixture
def smtp_server(settings) -> Iterator[SteerableHandler]:
    handler = SteerableHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "loopr@example.com"
    yield handler
    controller.stop()


# --- raw HTTP receivers --------------------------------------------------------


class RawReceiver:
    """A TCP server that runs `behave(conn, receiver)` for each connection:
    for receivers that hang, trickle or flood, which an HTTP server library
    would not let us write."""

    def __init__(self, behave: Callable[[socket.socket, RawReceiver], None]) -> None:
        self.behave = behave
        self.stop = threading.Event()
        self.connections = 0
        self.finished_sending = False
        self.bytes_sent = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.behave(conn, self)
            except OSError:
                pass  # the client hung up on us, which is often the point

    def close(self) -> None:
        self.stop.set()
        self._listener.close()
        self._thread.join(timeout=2)


def read_request_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def raw_receiver() -> Iterator[Callable[[Callable[[socket.socket, RawReceiver], None]], RawReceiver]]:
    receivers: list[RawReceiver] = []

    def start(behave: Callable[[socket.socket, RawReceiver], None]) -> RawReceiver:
        receiver = RawReceiver(behave)
        receivers.append(receiver)
        return receiver

    yield start
    for receiver in receivers:
        receiver.close()
