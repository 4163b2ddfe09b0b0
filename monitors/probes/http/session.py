"""The HTTP probe's requests Sessions, one per check in flight, and the urllib3 pieces
under it: connections that keep to the check's deadline and are never reused,
and an adapter that always verifies with the shared SSLContext.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import InsecureRequestWarning

from loopr import net
from loopr.addresses import OPEN, Guard

from .tls import get_ssl_context, get_unverified_ssl_context

# A monitor with tls_verify off asked for exactly that: a warning per check
# would only flood the probe node's log.
warnings.filterwarnings("ignore", category=InsecureRequestWarning)

USER_AGENT = "Loopr/0.1 (+uptime monitor)"
MAX_REDIRECTS = 5


class CheckDeadline(net.Deadline):
    """A check's deadline, carrying the certificate of its latest TLS connection."""

    __slots__ = ("peer_der",)

    def __init__(self, expires: float, guard: Guard = OPEN) -> None:
        super().__init__(expires, guard)
        self.peer_der: bytes | None = None

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__(*exc_info)
        # The reaper's heap keeps this object until its deadline; keep it small.
        self.peer_der = None


class _ProbeHTTPConnection(net.BoundedConnectionMixin, HTTPConnection):
    pass


class _ProbeHTTPSConnection(net.BoundedConnectionMixin, HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        deadline = net.current_deadline()
        if isinstance(deadline, CheckDeadline):
            # Read now: once the response is released the socket is gone.
            deadline.peer_der = self.sock.getpeercert(binary_form=True)


class _NoReuseMixin:
    """Closes connections instead of pooling them: each check starts fresh,
    even against a server that ignores `Connection: close`."""

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn.close()
        super()._put_conn(None)  # type: ignore[misc]  # keep the pool's slot


class _ProbeHTTPPool(_NoReuseMixin, HTTPConnectionPool):
    ConnectionCls = _ProbeHTTPConnection


class _ProbeHTTPSPool(_NoReuseMixin, HTTPSConnectionPool):
    ConnectionCls = _ProbeHTTPSConnection


class _ProbeAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _ProbeHTTPPool,
            "https": _ProbeHTTPSPool,
        }

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, _ = super().build_connection_pool_key_attributes(request, verify, cert)
        # Verify with the shared context, unless the monitor turned
        # tls_verify off (verify=False); urllib3 drops these for http.
        if verify is False:
            return host_params, {"ssl_context": get_unverified_ssl_context(), "cert_reqs": "CERT_NONE"}
        return host_params, {"ssl_context": get_ssl_context(), "cert_reqs": "CERT_REQUIRED"}

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # requests would set ca_certs to certifi's path here, and urllib3 then
        # calls load_verify_locations() for every new connection (~15 ms).
        # The shared context already holds the CAs.
        conn.cert_reqs = "CERT_NONE" if verify is False else "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        # Checks never go through a proxy (trust_env is off, proxies={}), so
        # the path is the URL to send; requests' own would parse the URL
        # twice to find that out (~2% of a check's CPU).
        return request.path_url

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        deadline = net.current_deadline()
        if deadline is not None:
            # Redirect hops get only what is left of the check's deadline.
            kwargs["timeout"] = deadline.socket_timeout()
        return super().send(request, **kwargs)


# Sessions not in use. A check borrows one and gives it back, so a node
# running thousands of checks at once (one greenlet each, see
# workers.probe_runner) builds only as many Sessions as were ever in flight
# together, not one per check; a thread-local one would be per greenlet, i.e.
# per check. list.pop and list.append are atomic, for threads and greenlets.
_idle: list[requests.Session] = []


@contextmanager
def session() -> Iterator[requests.Session]:
    """A Session for one check: building one per check would cost CPU for nothing."""
    current = _idle.pop() if _idle else _new_session()
    try:
        yield current
    finally:
        # Cookies must not leak from one monitor's check into the next.
        current.cookies.clear()
        _idle.append(current)


def _new_session() -> requests.Session:
    current = requests.Session()
    # No netrc, proxy or CA-bundle lookups from the environment per request.
    current.trust_env = False
    current.max_redirects = MAX_REDIRECTS
    current.headers["User-Agent"] = USER_AGENT
    current.headers["Connection"] = "close"
    # Pools never hold a connection (see _NoReuseMixin), so one slot each
    # is enough, and building a pool then costs ~20 us instead of ~35 us.
    adapter = _ProbeAdapter(pool_connections=32, pool_maxsize=1, max_retries=0)
    current.mount("http://", adapter)
    current.mount("https://", adapter)
    return current
