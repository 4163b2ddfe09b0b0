from __future__ import annotations

import os
import sys

from celery import Celery

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

app = Celery("loopr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
