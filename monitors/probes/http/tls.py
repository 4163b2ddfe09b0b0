"""TLS for the HTTP probe: one verifying SSLContext shared by every check in
the process, and a certificate's expiry, read even from a server whose
certificate fails verification (an expired certificate must still say when).
"""

from __future__ import annotations

import functools
import socket
import ssl
import threading
from datetime import datetime
from typing import Any

import certifi
from cryptography import x509
from urllib3.util import ssl_ as urllib3_ssl

from loopr import net


class _SharedSSLContext(ssl.SSLContext):
    """An SSLContext that many threads wrap sockets with at once.

    urllib3 calls set_alpn_protocols() on the context for every connection.
    On a shared context that frees and replaces OpenSSL's copy while another
    thread may be reading it in SSL_new(), so we skip calls that change nothing.
    """

    def set_alpn_protocols(self, alpn_protocols: Any) -> None:
        protocols = tuple(alpn_protocols)
        if getattr(self, "_loopr_alpn", None) != protocols:
            super().set_alpn_protocols(protocols)
            self._loopr_alpn = protocols


def build_ssl_context(
    cafile: str | None = None, cadata: str | bytes | None = None
) -> ssl.SSLContext:
    """A verifying client context trusting certifi's bundle, or the CAs given."""
    context = _SharedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None and cadata is None:
        cafile = certifi.where()
    context.load_verify_locations(cafile=cafile, cadata=cadata)
    context.set_alpn_protocols(urllib3_ssl.ALPN_PROTOCOLS)
    return context


_ssl_context: ssl.SSLContext | None = None
_ssl_context_lock = threading.Lock()


def get_ssl_context() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        with _ssl_context_lock:
            if _ssl_context is None:
                _ssl_context = build_ssl_context()
    return _ssl_context


def set_ssl_context(context: ssl.SSLContext | None) -> None:
    """Trust what `context` trusts for every later check; None restores certifi.

    Meant for tests and for a worker that must trust a private CA. The context
    is part of urllib3's pool key, so no Session needs rebuilding.
    """
    global _ssl_context
    _ssl_context = context


@functools.cache
def _unverified_context() -> ssl.SSLContext:
    # Reads the certificate of a server that failed verification, and checks
    # monitors with tls_verify off (a self-signed or private-CA certificate);
    # shared by every thread like the verifying one.
    context = _SharedSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(urllib3_ssl.ALPN_PROTOCOLS)
    return context


def get_unverified_ssl_context() -> ssl.SSLContext:
    return _unverified_context()


@functools.lru_cache(maxsize=1024)
def certificate_expiry(der: bytes) -> datetime:
    # Cached by certificate: most checks hit a host whose cert we parsed before.
    return x509.load_der_x509_certificate(der).not_valid_after_utc


def peer_certificate_unverified(
    host: str, port: int | None, deadline: net.Deadline
) -> bytes | None:
    """One more handshake without verification, only to read the certificate."""
    host = host.strip("[]")
    remaining = deadline.remaining()
    if not host or remaining <= 0:
        return None
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with net.connect_first(addresses, deadline.remaining, guard=deadline.guard) as raw:
            deadline.watch(raw)
            server_name = None if urllib3_ssl.is_ipaddress(host) else host
            with _unverified_context().wrap_socket(raw, server_hostname=server_name) as tls:
                return tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None
