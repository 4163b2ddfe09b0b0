"""A small real DNS server on 127.0.0.1 (UDP, and TCP for truncated
answers), built on dnspython's message parser, that the tests steer: records
per (name, type), and names that answer NXDOMAIN, SERVFAIL or slowly."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass
class DnsServer:
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    rcodes: dict[str, int] = field(default_factory=dict)  # name -> rcode (NXDOMAIN, SERVFAIL…)
    delays: dict[str, float] = field(default_factory=dict)  # name -> seconds before answering
    queries: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0
    _servers: list = field(default_factory=list)

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records[(name.rstrip(".").lower(), rdtype)] = list(values)

    def url(self, name: str, rdtype: str = "A") -> str:
        return f"dns://127.0.0.1:{self.port}/{name}?type={rdtype}"

    def answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - garbage is ignored, as a real server would
            return None
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        time.sleep(self.delays.get(name, 0))
        response = dns.message.make_response(query)
        if name in self.rcodes:
            response.set_rcode(self.rcodes[name])
            return response.to_wire()
        values = self.records.get((name, rdtype))
        if values is None and not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif values:
            response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", rdtype, values))
        return response.to_wire()

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


def start_dns_server() -> DnsServer:
    state = DnsServer()

    class Udp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            reply = state.answer(data)
            if reply is not None:
                try:
                    sock.sendto(reply, self.client_address)
                except OSError:  # stopped while a slow answer was waiting
                    pass

    class Tcp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            length = int.from_bytes(self.request.recv(2), "big")
            reply = state.answer(self.request.recv(length))
            if reply is not None:
                self.request.sendall(len(reply).to_bytes(2, "big") + reply)

    udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
    udp.daemon_threads = True
    state.port = udp.server_address[1]
    tcp_class = type("TcpServer", (socketserver.ThreadingTCPServer,), {"allow_reuse_address": True})
    try:
        tcp = tcp_class(("127.0.0.1", state.port), Tcp)
    except OSError:  # the TCP port is taken: answers that need TCP will fail, the rest work
        tcp = None
    tcp_servers = [tcp] if tcp else []
    for server in [udp, *tcp_servers]:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    state._servers = [udp, *tcp_servers]
    return state


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
