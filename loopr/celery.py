from __future__ import annotations

import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopr.settings")

# kombu picks a transport class by the broker URL's scheme through this table;
# Loopr's Redis transport is kombu's with a gate that drops malformed
# envelopes instead of dying on them (loopr/broker.py). Through the table, the
# URL still decides everything else (TLS for rediss://, a socket path).
for _scheme in ("redis", "rediss"):
    TRANSPORT_ALIASES[_scheme] = "loopr.broker:Transport"

app = Celery("loopr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
