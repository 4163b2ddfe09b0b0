# The Celery app is imported here so that @shared_task binds to it whenever
# Django starts (web, worker, beat, manage.py).
from .celery import app as celery_app

__all__ = ("celery_app",)
__version__ = "0.1.0"
