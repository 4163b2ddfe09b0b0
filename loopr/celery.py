from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopr.settings")

app = Celery("loopr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
