from __future__ import annotations

from django.db import connection
from django.http import JsonResponse

# Seconds the broker gets to answer: well within a load balancer's patience.
BROKER_TIMEOUT = 2.0


def healthz(request):
    """200 when the database and the broker answer, 503 otherwise."""
    checks = {"database": _database(), "broker": _broker()}
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure means "not healthy", with its reason
        return f"error: {type(exc).__name__}"


def _broker() -> str:
    from loopr.celery import app

    # Socket timeouts as well: a broker behind a firewall that drops packets
    # would otherwise hold a web worker for minutes, not fail the check.
    options = {"socket_connect_timeout": BROKER_TIMEOUT, "socket_timeout": BROKER_TIMEOUT}
    try:
        with app.connection_for_write(transport_options=options) as conn:
            conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT)
            conn.default_channel  # the transport answers, not just the socket
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
