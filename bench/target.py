"""A fast probe target for the benchmark: answers every request with a fixed
200 and closes, on one asyncio loop, so it costs the shared CPU as little as
possible. Usage: python bench/target.py PORT HOST [HOST ...]

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

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            self.transport.write(RESPONSE)
            self.transport.close()


async def main(port: int, hosts: list[str]) -> None:
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(Answer, host, port, backlog=4096) for host in hosts]
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2:] or ["127.0.0.1"]))
