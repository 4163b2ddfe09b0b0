"""A fast probe target for the benchmark: answers every request with a fixed
200 and closes, on one asyncio loop, so it costs the shared CPU as little as
possible. Usage: python bench/target.py PORT"""

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


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
