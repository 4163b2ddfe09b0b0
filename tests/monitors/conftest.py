"""Real servers on 127.0.0.1 for the probe tests.

pytest-httpserver covers well-behaved HTTP; `RawServer` covers everything a
well-behaved server would never do (trickling, stalling, keeping connections
open, broken TLS) by handing each accepted socket to a plain function.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitors.probes import http as http_probe

LOCALHOST = "127.0.0.1"

Handler = Callable[[socket.socket, "RawServer"], None]


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    # The plugin defaults to "localhost", which may resolve to ::1 first.
    return LOCALHOST, 0


@dataclass
class RawServer:
    handler: Handler
    tls: ssl.SSLContext | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    client_ports: list[int] = field(default_factory=list)
    requests_per_connection: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server((LOCALHOST, 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept_forever, daemon=True).start()

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{LOCALHOST}:{self.port}{path}"

    def _accept_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, (_, port) = self._listener.accept()
            except OSError:
                return  # listener closed by stop()
            with self._lock:
                self.client_ports.append(port)
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handler(conn, self)
        except (OSError, ssl.SSLError):
            pass  # the probe hung up, as it is meant to on errors and deadlines
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self._listener.close()
        with self._lock:
            for conn in self._open:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler, tls: ssl.SSLContext | None = None) -> RawServer:
        server = RawServer(handler, tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def read_request(conn: socket.socket) -> bytes:
    """Read one request head (and a Content-Length body); b"" when the client left."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def respond(conn: socket.socket, status: str = "200 OK", body: bytes = b"ok") -> None:
    conn.sendall(
        f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + body
    )


# --- TLS -------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trust_test_ca(test_ca: trustme.CA) -> Iterator[ssl.SSLContext]:
    """Make the probe trust the test CA (and only it) for this test."""
    context = http_probe.build_ssl_context(cadata=test_ca.cert_pem.bytes().decode())
    http_probe.set_ssl_context(context)
    yield context
    http_probe.set_ssl_context(None)


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def valid_cert(test_ca: trustme.CA) -> trustme.LeafCert:
    return test_ca.issue_cert(LOCALHOST)


@pytest.fixture(scope="session")
def expired_cert(test_ca: trustme.CA) -> trustme.LeafCert:
    # Signed by the trusted CA, so expiry is the only thing wrong with it.
    now = dt.datetime.now(dt.timezone.utc)
    return test_ca.issue_cert(
        LOCALHOST,
        not_before=now - dt.timedelta(days=90),
        not_after=(now - dt.timedelta(days=10)).replace(microsecond=0),
    )


@dataclass(frozen=True)
class SelfSigned:
    context: ssl.SSLContext
    not_after: dt.datetime
    files: tuple[str, str] = ("", "")  # (certificate, key) PEM paths


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loopr self-signed")])
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    not_after = now + dt.timedelta(days=30)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOCALHOST))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("self-signed")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return SelfSigned(context, not_after, (str(cert_file), str(key_file)))


# --- misbehaving peers -----------------------------------------------------


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A port whose connects hang: its accept queue is full, so Linux drops SYNs."""
    listener = socket.socket()
    listener.bind((LOCALHOST, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection((LOCALHOST, port), timeout=1)
    probe = socket.socket()
    probe.settimeout(0.2)
    try:
        probe.connect((LOCALHOST, port))
    except TimeoutError:
        pass
    else:
        pytest.skip("this kernel accepted a connection past a full backlog")
    finally:
        probe.close()
    yield port
    filler.close()
    listener.close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound then released, so no one else has it)."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]
