from __future__ import annotations

import os
import sys

from celery import Celery
from celery.app import amqp
from kombu import Exchange, Queue
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopr.settings")


def _resolve_names_in_the_event_loop() -> None:
    # A probe node runs on the gevent pool (Procfile), which has patched the
    # standard library by now. gevent's default resolver hands every lookup
    # to a pool of native threads that poll for work and take the GIL from
    # the event loop each time they wake: at 1,000 checks/s that stalled the
    # loop until checks against a target answering in 500 ms timed out
    # (5,600 checks: 1,670 timeouts with it, none with c-ares, p99 1.0 s;
    # BENCHMARKS.md). c-ares runs in the loop itself. GEVENT_RESOLVER still wins.
    if "gevent" not in sys.modules:
        return
    from gevent import config, monkey

    if monkey.is_module_patched("socket") and "GEVENT_RESOLVER" not in os.environ:
        config.resolver = "ares"


_resolve_names_in_the_event_loop()


# kombu picks a transport class by the broker URL's scheme through this table;
# Loopr's Redis transport is kombu's with a gate that drops malformed
# envelopes instead of dying on them (loopr/broker.py). Through the table, the
# URL still decides everything else (TLS for rediss://, a socket path).
for _scheme in ("redis", "rediss"):
    TRANSPORT_ALIASES[_scheme] = "loopr.broker:Transport"


class Queues(amqp.Queues):
    def new_missing(self, name: str) -> Queue:
        # Every Loopr queue is a plain Redis list reached through the default
        # exchange: Celery already publishes direct routes there (the "anon
        # exchange" in send_task_message), and kombu consumes a list by its
        # name. Declaring would only add kombu's `_kombu.binding.*` sets,
        # which nothing then reads; without them a probe node's Redis user
        # needs no access to those shared keys (workers/broker_acl.py).
        return Queue(name, Exchange(""), routing_key=name, no_declare=True)


class AMQP(amqp.AMQP):
    queues_cls = Queues


app = Celery("loopr", amqp=AMQP)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
