"""A probe target the tests steer: status, delay and body per path."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    status: int = 200
    delay: float = 0.0
    body: bytes = b"ok"
    cycle: tuple[int, ...] = ()  # statuses answered in turn, one per request
    # By the clock instead: `status` for flip_every seconds, then flip_status
    # as long, and so on (from when the behaviour was set).
    flip_every: float = 0.0
    flip_status: int = 500
    since: float = field(default_factory=time.monotonic)

    def status_now(self, hit: int) -> int:
        if self.cycle:
            return self.cycle[hit % len(self.cycle)]
        if self.flip_every and int((time.monotonic() - self.since) / self.flip_every) % 2:
            return self.flip_status
        return self.status


@dataclass
class Target:
    server: ThreadingHTTPServer
    default: Behaviour = field(default_factory=Behaviour)
    paths: dict[str, Behaviour] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def behave(self, path: str | None = None, **kwargs) -> None:
        if path is None:
            self.default = Behaviour(**kwargs)
        else:
            self.paths[path] = Behaviour(**kwargs)

    def hit_count(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)


class QuietHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A probe that needs no body closes the connection before reading
        # it: the broken pipe is the client's choice, not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def start_target(host: str = "127.0.0.1") -> Target:
    target: Target

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            path = self.path.split("?", 1)[0]
            with target.lock:
                target.hits[path] = target.hits.get(path, 0) + 1
                hit = target.hits[path]
            behaviour = target.paths.get(path, target.default)
            status = behaviour.status_now(hit)
            if behaviour.delay:
                time.sleep(behaviour.delay)
            body = b"" if self.command == "HEAD" else behaviour.body
            self.send_response(status)
            self.send_header("Content-Length", str(len(behaviour.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_HEAD = do_POST = _serve

        def log_message(self, *args) -> None:
            pass

    server = QuietHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    target = Target(server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return target


@dataclass
class Delivery:
    at: float
    webhook_id: str
    payload: dict


@dataclass
class WebhookReceiver:
    """A signed-webhook endpoint that verifies every request the Standard
    Webhooks way (with the channel's secret, set once the channel exists)
    and keeps each delivery it accepted; a bad signature gets a 401."""

    server: ThreadingHTTPServer
    secret: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def received(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_webhook_receiver(host: str = "127.0.0.1") -> WebhookReceiver:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                payload = Webhook(receiver.secret).verify(body, headers)
            except (WebhookVerificationError, ValueError) as exc:
                with receiver.lock:
                    receiver.refused.append(f"{headers.get('webhook-id')}: {exc}")
                status = 401
            else:
                with receiver.lock:
                    receiver.deliveries.append(Delivery(time.time(), headers["webhook-id"], payload))
                status = 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    receiver = WebhookReceiver(server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


class ListeningTarget:
    """bench/target.py in a process of its own: one asyncio loop that answers
    `/delay/MS` after MS milliseconds and `/hang` never, so a test can keep
    thousands of checks waiting on it without the target costing the test's
    process any CPU."""

    def __init__(self) -> None:
        import socket
        import subprocess
        import sys
        from pathlib import Path

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        script = Path(__file__).resolve().parents[2] / "bench" / "target.py"
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.port), "127.0.0.1"])
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
