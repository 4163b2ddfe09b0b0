import gc
import os

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopr.settings")
site = get_wsgi_application()

from monitors.api.ping import PingApplication  # noqa: E402  (after Django is set up)


class PingHandler(WSGIHandler):
    """Django for the heartbeat ping URLs, without the site's middleware.

    A ping is an unauthenticated, CSRF-exempt, plain-text request whose cost
    is its throughput: sessions, authentication, CSRF, messages, CSP, axes
    and whitenoise have nothing to do for it, yet cost more than the ping's
    own work. It keeps SecurityMiddleware (an HTTPS redirect and its headers
    still apply) and everything else Django does per request: URL routing,
    the request signals (connection age and health) and error handling."""

    def load_middleware(self, is_async: bool = False) -> None:
        from django.middleware.security import SecurityMiddleware

        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        self._middleware_chain = convert_exception_to_response(
            SecurityMiddleware(convert_exception_to_response(self._get_response)))


# A ping URL is answered without Django's handler (PingApplication); what
# else starts with /ping/ (a malformed ping URL, an HTTPS redirect) by
# Django's, without the site's middleware.
pings = PingApplication(fallback=PingHandler())


def application(environ, start_response):
    handler = pings if environ.get("PATH_INFO", "").startswith("/ping/") else site
    return handler(environ, start_response)


# Now, not at the first request: /healthz's start-up grace counts from here.
from loopr import health  # noqa: E402, F401

# What is loaded by now lives as long as the process: frozen out of the
# garbage collector's walk, its full collections (one every ~12 minute-series
# requests, which allocate ~20,000 objects each) stop walking ~150,000
# objects of Django, DRF and Loopr: through gunicorn the minute series' p95
# fell from 130-180 ms to 63-79 (BENCHMARKS.md, issue 12).
gc.freeze()
