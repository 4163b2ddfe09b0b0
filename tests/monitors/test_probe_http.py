"""The HTTP(S) probe, against real servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import errno
import json
import socket
import ssl
import time
from collections.abc import Callable

import pytest
import requests
import trustme
from cryptography import x509
from pytest_httpserver import HTTPServer
from werkzeug import Response

from monitors.choices import ErrorKind
from monitors.probes import CheckSpec, ProbeResult, parse_expected_status, run_check
from monitors.probes.http import MAX_BODY_BYTES, USER_AGENT, find_keyword
from monitors.probes.http import check as http_check
from monitors.wire import parse_result, result_payload

from .conftest import RawServer, SelfSigned, read_request, respond, server_context

StartServer = Callable[..., RawServer]


def serve_ok(conn: socket.socket, server: RawServer) -> None:
    read_request(conn)
    respond(conn, body=b"all good")


def timed_check(spec: CheckSpec) -> tuple[ProbeResult, float]:
    started = time.monotonic()
    result = run_check(spec)
    return result, time.monotonic() - started


# --- status ----------------------------------------------------------------


def test_it_reports_ok_for_a_200(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("hello")

    result = run_check(CheckSpec(httpserver.url_for("/"), timeout=2))

    # A plain success: ok, the code, a latency, no error text.
    assert result.ok
    assert result.error_kind == ErrorKind.OK
    assert result.error == ""
    assert result.status_code == 200
    assert result.latency_ms is not None and result.latency_ms > 0
    assert result.tls_expires_at is None
    assert result.started_at.tzinfo is not None


def test_it_reports_an_unexpected_status_with_the_ranges_it_expected(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/").respond_with_data("down", status=503)

    result = run_check(CheckSpec(httpserver.url_for("/"), timeout=2))

    assert not result.ok
    assert result.error_kind == ErrorKind.STATUS
    assert result.error == "HTTP 503, expected 200-399"
    assert result.status_code == 503


def test_it_judges_the_status_by_custom_expected_ranges(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/teapot").respond_with_data("short and stout", status=418)
    httpserver.expect_request("/missing").respond_with_data("nope", status=404)

    teapot = run_check(
        CheckSpec(httpserver.url_for("/teapot"), timeout=2, expected_status="200-299, 418")
    )
    missing = run_check(
        CheckSpec(httpserver.url_for("/missing"), timeout=2, expected_status="2xx")
    )

    # 418 is listed, so it is a success; a 404 is outside "2xx".
    assert teapot.ok and teapot.status_code == 418
    assert missing.error_kind == ErrorKind.STATUS
    assert missing.error == "HTTP 404, expected 2xx"


# --- keyword ---------------------------------------------------------------


def test_it_reports_ok_when_the_keyword_is_in_the_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("<p>status: all systems go</p>")

    result = run_check(CheckSpec(httpserver.url_for("/"), timeout=2, keyword="systems go"))

    assert result.ok


def test_it_reports_a_missing_keyword_with_how_much_it_read(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("<p>maintenance</p>")

    result = run_check(CheckSpec(httpserver.url_for("/"), timeout=2, keyword="systems go"))

    assert result.error_kind == ErrorKind.KEYWORD
    assert result.error == "keyword 'systems go' not found in the response body (18 bytes)"
    assert result.status_code == 200


def test_it_finds_a_keyword_split_across_two_reads(raw_server: StartServer) -> None:
    def split_keyword(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        first, second = b"x" * 5000 + b"need", b"le" + b"y" * 5000
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
            + f"Content-Length: {len(first) + len(second)}\r\n\r\n".encode()
            + first
        )
        time.sleep(0.2)  # the probe reads what has arrived, ending mid-keyword
        conn.sendall(second)

    server = raw_server(split_keyword)

    result = run_check(CheckSpec(server.url(), timeout=3, keyword="needle"))

    assert result.ok, result.error


def reader(*chunks: bytes) -> Callable[[int], bytes]:
    """A read(max_bytes) over fixed chunks, honouring max_bytes like a socket."""
    pending = list(chunks)

    def read(max_bytes: int) -> bytes:
        if not pending:
            return b""
        chunk = pending.pop(0)
        if len(chunk) > max_bytes:
            pending.insert(0, chunk[max_bytes:])
        return chunk[:max_bytes]

    return read


def test_keyword_search_keeps_an_overlap_between_chunks() -> None:
    # Every split point of the keyword must still be found.
    for split in range(1, len(b"needle")):
        read = reader(b"abc" + b"needle"[:split], b"needle"[split:] + b"xyz")
        assert find_keyword(read, b"needle") == (True, 12, False)


def test_keyword_search_reads_no_further_than_the_limit() -> None:
    asked: list[int] = []
    read = reader(b"a" * 10, b"needle")

    def recording(max_bytes: int) -> bytes:
        asked.append(max_bytes)
        return read(max_bytes)

    # The keyword starts inside the limit but ends past it: missing, and
    # the second read asked for only the 2 bytes left.
    assert find_keyword(recording, b"needle", limit=12) == (False, 12, True)
    assert asked[1] == 2


def test_it_stops_reading_a_huge_body_at_the_cap(raw_server: StartServer) -> None:
    def ten_mebibytes_promised(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
            + f"Content-Length: {10 * 1024 * 1024}\r\n\r\n".encode()
        )
        conn.sendall(b"a" * (2 * 1024 * 1024))
        # The remaining 8 MiB never come: a probe reading on would time out.
        server.stopping.wait(10)

    server = raw_server(ten_mebibytes_promised)

    result, elapsed = timed_check(CheckSpec(server.url(), timeout=5, keyword="needle"))

    assert result.error_kind == ErrorKind.KEYWORD
    assert result.error == f"keyword 'needle' not found in the first {MAX_BODY_BYTES} bytes"
    assert elapsed < 2


# --- deadlines -------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_it_reports_a_timeout_when_the_server_trickles_headers(
    raw_server: StartServer,
    valid_cert: trustme.LeafCert,
    trust_test_ca: ssl.SSLContext,
    scheme: str,
) -> None:
    def trickle_headers(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        # One byte every 0.2 s: no single read ever waits long enough to time out.
        while not server.stopping.wait(0.2):
            conn.sendall(b"a")

    # Over TLS the socket the reaper must cut has been wrapped (and detached).
    tls = server_context(valid_cert) if scheme == "https" else None
    server = raw_server(trickle_headers, tls=tls)

    result, elapsed = timed_check(CheckSpec(server.url(), timeout=1.0))

    assert result.error_kind == ErrorKind.TIMEOUT
    assert result.error == "no complete response within 1.0 s"
    assert elapsed < 1.5


def test_it_reports_a_timeout_when_the_body_trickles_past_the_deadline(
    raw_server: StartServer,
) -> None:
    def trickle_body(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while not server.stopping.wait(0.1):
            conn.sendall(b".")

    server = raw_server(trickle_body)

    result, elapsed = timed_check(CheckSpec(server.url(), timeout=1.0, keyword="needle"))

    # The status was fine, but the keyword could not be checked in time.
    assert result.error_kind == ErrorKind.TIMEOUT
    assert result.status_code == 200
    assert elapsed < 1.5


def test_it_reports_a_timeout_when_the_server_answers_too_late(raw_server: StartServer) -> None:
    def sleepy(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        if not server.stopping.wait(3):
            respond(conn)

    server = raw_server(sleepy)

    result, elapsed = timed_check(CheckSpec(server.url(), timeout=0.5))

    assert result.error_kind == ErrorKind.TIMEOUT
    assert result.error == "no complete response within 0.5 s"
    assert elapsed < 1.0


def test_it_reports_a_timeout_when_the_connection_cannot_be_made(blackhole_port: int) -> None:
    result, elapsed = timed_check(CheckSpec(f"http://127.0.0.1:{blackhole_port}/", timeout=0.5))

    assert result.error_kind == ErrorKind.TIMEOUT
    assert result.error == "no connection within 0.5 s"
    assert elapsed < 1.0


def test_it_reports_a_timeout_when_the_tls_handshake_trickles(raw_server: StartServer) -> None:
    def trickle_handshake(conn: socket.socket, server: RawServer) -> None:
        conn.recv(65536)  # the ClientHello
        # A TLS record header promising 16 KiB of handshake, then one byte at a
        # time, so the handshake never completes.
        conn.sendall(b"\x16\x03\x03\x40\x00")
        while not server.stopping.wait(0.2):
            conn.sendall(b"\x00")

    server = raw_server(trickle_handshake)
    url = server.url().replace("http://", "https://")

    result, elapsed = timed_check(CheckSpec(url, timeout=1.0))

    assert result.error_kind == ErrorKind.TIMEOUT
    assert elapsed < 1.5


def test_a_cut_check_does_not_disturb_the_next_one(raw_server: StartServer) -> None:
    def trickle_headers(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not server.stopping.wait(0.1):
            conn.sendall(b"a")

    slow, fast = raw_server(trickle_headers), raw_server(serve_ok)

    # The reaper must only cut sockets of the check whose deadline passed.
    assert run_check(CheckSpec(slow.url(), timeout=0.3)).error_kind == ErrorKind.TIMEOUT
    assert run_check(CheckSpec(fast.url(), timeout=5)).ok
    time.sleep(0.4)  # past where the first check's deadline would have been
    assert run_check(CheckSpec(fast.url(), timeout=5)).ok


# --- redirects -------------------------------------------------------------


def redirect(location: str, status: int = 302) -> Response:
    return Response("", status=status, headers={"Location": location})


def test_it_follows_a_redirect_to_a_success(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old").respond_with_response(redirect("/new", 301))
    httpserver.expect_request("/new").respond_with_data("moved here")

    result = run_check(CheckSpec(httpserver.url_for("/old"), timeout=2, keyword="moved here"))

    assert result.ok
    assert result.status_code == 200


def test_it_follows_five_redirects_but_not_six(httpserver: HTTPServer) -> None:
    def chain(name: str, hops: int) -> str:
        for hop in range(hops):
            target = f"/{name}{hop + 1}" if hop + 1 < hops else "/end"
            httpserver.expect_request(f"/{name}{hop}").respond_with_response(redirect(target))
        return httpserver.url_for(f"/{name}0")

    httpserver.expect_request("/end").respond_with_data("arrived")

    five = run_check(CheckSpec(chain("five", 5), timeout=2))
    six = run_check(CheckSpec(chain("six", 6), timeout=2))

    assert five.ok
    assert six.error_kind == ErrorKind.REDIRECTS


def test_it_reports_a_redirect_loop(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/loop").respond_with_response(redirect("/loop"))

    result = run_check(CheckSpec(httpserver.url_for("/loop"), timeout=2))

    assert result.error_kind == ErrorKind.REDIRECTS
    assert result.error == "more than 5 redirects"


def test_it_judges_the_redirect_itself_when_not_following(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old").respond_with_response(redirect("/new"))

    lenient = run_check(CheckSpec(httpserver.url_for("/old"), timeout=2, follow_redirects=False))
    strict = run_check(
        CheckSpec(
            httpserver.url_for("/old"), timeout=2, follow_redirects=False, expected_status="200"
        )
    )

    # The 302 is the answer: within the default 200-399, outside "200".
    assert lenient.ok and lenient.status_code == 302
    assert strict.error_kind == ErrorKind.STATUS
    assert strict.error == "HTTP 302, expected 200"
    # /new was never requested.
    assert [request.path for request, _ in httpserver.log] == ["/old", "/old"]


# --- connection failures ---------------------------------------------------


def test_it_reports_a_refused_connection(closed_port: int) -> None:
    result = run_check(CheckSpec(f"http://127.0.0.1:{closed_port}/", timeout=2))

    assert result.error_kind == ErrorKind.REFUSED
    assert result.error == f"connection refused by 127.0.0.1:{closed_port}"


def test_it_reports_a_name_that_does_not_resolve() -> None:
    result = run_check(CheckSpec("http://loopr-probe-test.invalid/", timeout=2))

    assert result.error_kind == ErrorKind.DNS
    assert result.error.startswith("DNS lookup failed for loopr-probe-test.invalid")


def test_it_reports_an_unreachable_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(self: socket.socket, address: object) -> None:
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    # No real unreachable address is allowed in tests, so the kernel's answer is faked.
    monkeypatch.setattr(socket.socket, "connect", unreachable)

    result = run_check(CheckSpec("http://127.0.0.1:9/", timeout=2))

    assert result.error_kind == ErrorKind.UNREACHABLE
    assert result.error == "127.0.0.1:9 is unreachable: Network is unreachable"


def test_it_reports_a_server_that_hangs_up_without_answering(raw_server: StartServer) -> None:
    server = raw_server(lambda conn, server: read_request(conn))

    result = run_check(CheckSpec(server.url(), timeout=2))

    assert result.error_kind == ErrorKind.CONNECTION
    assert result.error == "server closed the connection without a response"


# --- what goes over the wire -----------------------------------------------


def test_it_sends_head_requests(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/", method="HEAD").respond_with_data("")

    result = run_check(CheckSpec(httpserver.url_for("/"), timeout=2, method="HEAD"))

    assert result.ok
    assert httpserver.log[0][0].method == "HEAD"


def test_it_sends_the_body_and_headers_as_configured(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("accepted", status=202)

    result = run_check(
        CheckSpec(
            httpserver.url_for("/hook"),
            timeout=2,
            method="post",
            headers={"X-Token": "s3cret", "Content-Type": "application/json"},
            body='{"ping": true}',
        )
    )

    request = httpserver.log[0][0]
    assert result.ok
    assert request.method == "POST"
    assert request.get_data() == b'{"ping": true}'
    assert request.headers["X-Token"] == "s3cret"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT


def test_it_never_sends_a_body_with_get(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("ok")

    run_check(CheckSpec(httpserver.url_for("/"), timeout=2, body="ignored"))

    request = httpserver.log[0][0]
    assert request.get_data() == b""
    assert "Content-Length" not in request.headers


def test_a_configured_user_agent_replaces_the_default(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("ok")

    run_check(CheckSpec(httpserver.url_for("/"), timeout=2, headers={"user-agent": "Mine/1.0"}))

    assert httpserver.log[0][0].headers["User-Agent"] == "Mine/1.0"


def test_it_opens_a_fresh_connection_for_every_check(raw_server: StartServer) -> None:
    def keep_alive(conn: socket.socket, server: RawServer) -> None:
        # Ignores "Connection: close", as plenty of servers do.
        served = 0
        while read_request(conn):
            served += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        server.requests_per_connection.append(served)

    server = raw_server(keep_alive)

    results = [run_check(CheckSpec(server.url(), timeout=2)) for _ in range(3)]

    assert all(result.ok for result in results)
    assert len(set(server.client_ports)) == 3
    # Each connection carried exactly one request and was then closed by us.
    for _ in range(50):
        if len(server.requests_per_connection) == 3:
            break
        time.sleep(0.02)
    assert server.requests_per_connection == [1, 1, 1]


def test_cookies_do_not_leak_from_one_check_to_the_next(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/login").respond_with_response(
        Response("hi", headers={"Set-Cookie": "session=abc; Path=/"})
    )
    httpserver.expect_request("/status").respond_with_data("ok")

    run_check(CheckSpec(httpserver.url_for("/login"), timeout=2))
    run_check(CheckSpec(httpserver.url_for("/status"), timeout=2))

    assert "Cookie" not in httpserver.log[1][0].headers


# --- TLS -------------------------------------------------------------------


def not_after(cert: trustme.LeafCert) -> dt.datetime:
    pem = cert.cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


@pytest.mark.usefixtures("trust_test_ca")
def test_it_checks_https_and_records_when_the_certificate_expires(
    raw_server: StartServer, valid_cert: trustme.LeafCert
) -> None:
    server = raw_server(serve_ok, tls=server_context(valid_cert))

    result = run_check(CheckSpec(server.url(), timeout=2, keyword="all good"))

    assert result.ok, result.error
    assert result.tls_expires_at == not_after(valid_cert)


@pytest.mark.usefixtures("trust_test_ca")
def test_it_reports_an_untrusted_certificate_and_still_records_its_expiry(
    raw_server: StartServer, self_signed: SelfSigned
) -> None:
    server = raw_server(serve_ok, tls=self_signed.context)

    result = run_check(CheckSpec(server.url(), timeout=2))

    expires = self_signed.not_after
    assert result.error_kind == ErrorKind.TLS
    assert result.error == f"self-signed certificate (expires {expires.date().isoformat()})"
    assert result.tls_expires_at == expires


@pytest.mark.usefixtures("trust_test_ca")
def test_it_reports_an_expired_certificate_with_its_expiry_date(
    raw_server: StartServer, expired_cert: trustme.LeafCert
) -> None:
    server = raw_server(serve_ok, tls=server_context(expired_cert))

    result = run_check(CheckSpec(server.url(), timeout=2))

    expired = not_after(expired_cert)
    assert result.error_kind == ErrorKind.TLS
    assert result.error == f"certificate has expired (expired {expired.date().isoformat()})"
    assert result.tls_expires_at == expired
    assert expired < dt.datetime.now(dt.timezone.utc)


def test_it_reports_a_tls_handshake_with_a_plain_http_server(raw_server: StartServer) -> None:
    # Answers the ClientHello with plain HTTP, as a misconfigured port would.
    server = raw_server(lambda conn, server: respond(conn, "400 Bad Request"))

    result = run_check(CheckSpec(server.url().replace("http://", "https://"), timeout=2))

    assert result.error_kind == ErrorKind.TLS
    assert result.tls_expires_at is None


def test_it_does_not_reload_the_ca_bundle_for_each_connection(
    raw_server: StartServer,
    valid_cert: trustme.LeafCert,
    test_ca: trustme.CA,
    trust_test_ca: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = raw_server(serve_ok, tls=server_context(valid_cert))
    loads: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        loads.append(args or kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)

    results = [run_check(CheckSpec(server.url(), timeout=2)) for _ in range(3)]

    # Three TLS connections, and not one CA load.
    assert all(result.ok for result in results)
    assert len(server.client_ports) == 3
    assert loads == []
    # Control: plain requests with a CA file loads it for every connection,
    # so the counter above would have seen it.
    with test_ca.cert_pem.tempfile() as ca_file:
        for _ in range(2):
            requests.get(server.url(), verify=ca_file, timeout=2)
    assert len(loads) >= 2


# --- never raising ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://", "URL has no host"),
        ("ftp://example.com/", "unsupported scheme 'ftp'"),
        ("example.com", "URL has no scheme"),
        ("http://example.com:99999/", None),
        ("http://[::1/", None),
    ],
)
def test_it_reports_an_invalid_url_instead_of_raising(url: str, error: str | None) -> None:
    result = run_check(CheckSpec(url, timeout=2))

    assert result.error_kind == ErrorKind.INVALID
    assert result.latency_ms is None
    if error is not None:
        assert result.error == error


def test_it_reports_an_invalid_expected_status_instead_of_raising() -> None:
    result = run_check(CheckSpec("http://127.0.0.1:9/", timeout=2, expected_status="abc"))

    assert result.error_kind == ErrorKind.INVALID
    assert result.error.startswith("invalid expected status: 'abc' is not a status code")


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan")])
def test_it_reports_a_nonsense_timeout_instead_of_raising(timeout: float) -> None:
    result = run_check(CheckSpec("http://127.0.0.1:9/", timeout=timeout))

    assert result.error_kind == ErrorKind.INVALID


def test_it_reports_a_probe_bug_as_an_internal_error(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpserver.expect_request("/").respond_with_data("ok")

    def broken(*args: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(http_check, "_judge", broken)

    result = run_check(CheckSpec(httpserver.url_for("/"), timeout=2))

    assert result.error_kind == ErrorKind.INTERNAL
    assert result.error == "KeyError: 'boom'"


# --- result and spec plumbing ----------------------------------------------


def test_a_result_survives_a_trip_through_json() -> None:
    result = ProbeResult(
        ok=False,
        error_kind=ErrorKind.TLS,
        error="certificate has expired (expired 2026-01-01)",
        latency_ms=12.3,
        started_at=dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc),
        tls_expires_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    )

    data = json.loads(json.dumps(result.to_dict()))

    assert data["started_at"] == "2026-03-01T12:00:00+00:00"
    # What ingest reads back is what the probe found.
    row = parse_result(result_payload(7, "2026-03-01T12:00:00+00:00", 0.0, data))
    assert (row["ok"], row["error_kind"], row["error"], row["latency_ms"], row["checked_at"], row["tls_expires_at"]) == (
        result.ok, result.error_kind, result.error, result.latency_ms, result.started_at, result.tls_expires_at)


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("200-399", ((200, 399),)),
        ("200-299,301, 418", ((200, 299), (301, 301), (418, 418))),
        ("2xx,304", ((200, 299), (304, 304))),
        (" 204 ", ((204, 204),)),
    ],
)
def test_expected_status_accepts_codes_ranges_and_classes(
    text: str, ranges: tuple[tuple[int, int], ...]
) -> None:
    assert parse_expected_status(text) == ranges


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected status is empty"),
        ("abc", "'abc' is not a status code"),
        ("600", "status code 600 is outside 100-599"),
        ("99", "'99' is not a status code"),
        ("300-200", "status range 300-200 runs backwards"),
        ("200,,300", "'' is not a status code"),
        ("6xx", "'6xx' is not a status code"),
    ],
)
def test_expected_status_rejects_malformed_input_clearly(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_expected_status(text)
