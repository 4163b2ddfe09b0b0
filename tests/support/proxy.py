"""A TCP forwarder on 127.0.0.1 that a test can cut and restore: the
database (or broker) behind it goes away for the processes that use it, as
in a restart, without touching the shared server itself."""

from __future__ import annotations

import socket
import threading


class Cuttable:
    """Forwards 127.0.0.1:`port` to `target`. `cut()` drops every open
    connection and refuses new ones (the port is closed); `restore()`
    listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.listener: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            conns, self.open = self.open, []
        if listener is not None:
            listener.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self.open += [client, upstream]
            for a, b, request in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, request, client), daemon=True).start()

    def passing(self, data: bytes, request: bool, client: socket.socket) -> None:
        """Sees every chunk on its way (`request`: from `client` to the
        server, else the answer to it); may hold it."""

    def _pipe(self, source: socket.socket, sink: socket.socket, request: bool, client: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self.passing(data, request, client)
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class HoldsReply(Cuttable):
    """Forwards like Cuttable; once `arm()`ed, the server's answer to the next
    request that contains `marker` is held until `release()`: the client
    waits in the middle of that command, as behind a slow network."""

    def __init__(self, target: tuple[str, int], marker: bytes) -> None:
        self.marker = marker
        self.armed = threading.Event()
        self.holding = threading.Event()
        self.released = threading.Event()
        self.held_for: socket.socket | None = None
        self.seen = 0  # requests that contained the marker
        super().__init__(target)

    def arm(self) -> None:
        self.armed.set()

    def release(self) -> None:
        self.released.set()

    def passing(self, data: bytes, request: bool, client: socket.socket) -> None:
        if request:
            self.seen += data.count(self.marker)
        if request and self.armed.is_set() and self.marker in data:
            self.armed.clear()
            self.held_for = client
            self.holding.set()
        elif not request and client is self.held_for:
            self.released.wait()
