"""The benchmark's probe target: answers every request with a fixed 200 and
closes, on one asyncio loop, so it costs the shared CPU as little as possible.

    python bench/target.py PORT HOST [HOST ...]

The path chooses how it answers, so one process serves every scenario:

* `/` (or anything else): at once;
* `/delay/MS`: after MS milliseconds (a slow target; timers, not threads,
  so 5,000 waiting answers cost nothing);
* `/hang`: never; the connection stays open until the client gives up (a
  target that accepts and then hangs).

It listens on several loopback addresses because each (client, server)
address pair has only ~28,000 ephemeral ports, and at 1,000+ fresh
connections a second the TIME_WAIT sockets of one pair exhaust them within
half a minute (as they would not with real, distinct targets).
"""

from __future__ import annotations

import asyncio
import sys

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
)


class Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self.timer is not None or self.buffer is None:
            return
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        path = self.buffer.split(b" ", 2)[1] if self.buffer.count(b" ") >= 2 else b"/"
        self.buffer = None
        if path.startswith(b"/hang"):
            return  # keep the connection, never answer
        if path.startswith(b"/delay/"):
            delay = int(path[len(b"/delay/"):].split(b"?")[0] or 0) / 1000
            self.timer = asyncio.get_running_loop().call_later(delay, self.answer)
        else:
            self.answer()

    def answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()


async def main(port: int, hosts: list[str]) -> None:
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(Answer, host, port, backlog=8192) for host in hosts]
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2:] or ["127.0.0.1"]))
