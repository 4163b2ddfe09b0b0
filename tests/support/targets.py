"""A probe target the tests steer: status, delay and body per path."""

from __future__ import annotations

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
            status = behaviour.cycle[hit % len(behaviour.cycle)] if behaviour.cycle else behaviour.status
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

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    target = Target(server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return target


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
