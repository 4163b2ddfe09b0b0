"""Loopr settings, read from the environment (see the README for every variable).

Every value goes through a small typed helper so that a bad value stops the
process at start-up with a message naming the variable, instead of surfacing
later as a confusing error deep inside a worker.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()


def _read(name: str, cast: Callable[..., Any], default: Any) -> Any:
    if name not in os.environ:
        return default
    try:
        return cast(name)
    except (ValueError, TypeError, ImproperlyConfigured, KeyError) as exc:
        raise ImproperlyConfigured(f"{name}: invalid value {os.environ[name]!r} ({exc})") from exc


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}: expected a boolean (true/false/1/0), got {raw!r}")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _read(name, env.int, default)
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}: must be at most {maximum}, got {value}")
    return value


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    value = _read(name, env.float, default)
    if value < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {value}")
    return value


def env_str(name: str, default: str) -> str:
    return os.environ.get(name) or default


VAR_DIR = Path(env_str("LOOPR_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)

# `dev.py run` generates a key once per checkout into var/secret_key, so the
# quick start and `manage.py` share it; a deployment sets SECRET_KEY.
_KEY_FILE = VAR_DIR / "secret_key"
SECRET_KEY = os.environ.get("SECRET_KEY") or (_KEY_FILE.read_text().strip() if _KEY_FILE.exists() else "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY: required when DEBUG is off (set SECRET_KEY, or DEBUG=true for development)"
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = _read("ALLOWED_HOSTS", env.list, ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = _read("CSRF_TRUSTED_ORIGINS", env.list, [])
TIME_ZONE = env_str("TIME_ZONE", "UTC")
try:
    import zoneinfo

    zoneinfo.ZoneInfo(TIME_ZONE)
except Exception as exc:  # zoneinfo raises several kinds for a bad key
    raise ImproperlyConfigured(f"TIME_ZONE: unknown time zone {TIME_ZONE!r}") from exc
USE_TZ = True
USE_I18N = False
LANGUAGE_CODE = "en-us"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from here: /api/docs/ works offline
    "django_celery_beat",
    "monitors",
    "workers",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "loopr.urls"
WSGI_APPLICATION = "loopr.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "loopr" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
if not os.environ.get("DATABASE_URL"):
    os.environ.pop("DATABASE_URL", None)  # set but empty means "the default"
DATABASES = {
    "default": _read("DATABASE_URL", env.db_url, env.db_url_config(f"sqlite:///{VAR_DIR / 'loopr.sqlite3'}"))
}
_db = DATABASES["default"]
if _db.get("ENGINE") not in {"django.db.backends.sqlite3", "django.db.backends.postgresql"}:
    raise ImproperlyConfigured(
        f"DATABASE_URL: use postgres://user:password@host:port/name or sqlite:///path, "
        f"got {os.environ.get('DATABASE_URL')!r}"
    )
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Web, beat and workers all write to the one file: WAL lets readers run
    # beside the writer, IMMEDIATE transactions queue writers instead of
    # failing with "database is locked" on lock upgrade.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # pytest-django would otherwise use an in-memory database, which the
    # worker processes of the end-to-end tests could not see.
    _db.setdefault("TEST", {})["NAME"] = str(VAR_DIR / "test_loopr.sqlite3")
else:
    _db.setdefault("CONN_MAX_AGE", 60)
    _db.setdefault("CONN_HEALTH_CHECKS", True)
    # A database host that drops packets must fail /healthz, not hang it.
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- Static files (whitenoise serves them from gunicorn) ------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
try:
    STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request without it
except OSError:
    pass  # a read-only image has it from collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Email ------------------------------------------------------------------------
vars().update(_read("EMAIL_URL", env.email_url, env.email_url_config("consolemail://")))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "loopr@localhost")
# An SMTP server that hangs must fail the attempt (and retry), not the worker.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)

# --- Broker and Celery ------------------------------------------------------------
# Unset: the embedded redis-server that `dev.py run` starts on a Unix socket
# under LOOPR_VAR_DIR (dev.py's embedded_broker_socket names the same path).
REDIS_URL = os.environ.get("REDIS_URL") or f"unix://{VAR_DIR / 'broker' / 'redis.sock'}"
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"REDIS_URL: expected redis://, rediss:// or unix:///path, got {REDIS_URL!r}")
# redis-py spells a socket unix:///path, kombu redis+socket:///path.
CELERY_BROKER_URL = "redis+socket://" + REDIS_URL[len("unix://"):] if REDIS_URL.startswith("unix://") else REDIS_URL
# A batch whose node died unacknowledged goes back to its queue after
# this many seconds; it must exceed the longest batch (LOOPR_MAX_TIMEOUT
# plus queueing), or a slow batch would be run twice (harmless, wasteful).
_visibility = env_int("LOOPR_BROKER_VISIBILITY_TIMEOUT", 300, minimum=2)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _visibility,
    # Look for abandoned messages often enough that the timeout above is
    # what decides how fast a dead node's batch moves on.
    "unacked_restore_interval": max(1, _visibility // 10),
    "unacked_restore_throttle": 1,
}

CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Tasks are idempotent, so a node that dies mid-task must give its message back.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_DEFAULT_QUEUE = "central"
CELERY_TASK_ROUTES = {
    "monitors.ingest_results": {"queue": "ingest"},
    # Heartbeats have a queue of their own: behind a backlog of results they
    # would arrive late, their region would be judged dead and get no checks.
    "workers.record_heartbeat": {"queue": "heartbeat"},
    "notifications.deliver_notification": {"queue": "notify"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Loopr ------------------------------------------------------------------------
LOOPR_REGION = env_str("LOOPR_REGION", "local")
if not re.fullmatch(r"[-a-zA-Z0-9_]{1,64}", LOOPR_REGION):
    raise ImproperlyConfigured(f"LOOPR_REGION: letters, digits, - and _ only (at most 64), got {LOOPR_REGION!r}")
LOOPR_MIN_INTERVAL = env_int("LOOPR_MIN_INTERVAL", 30, minimum=1, maximum=86400)
LOOPR_MAX_INTERVAL = 86400
LOOPR_MAX_TIMEOUT = env_int("LOOPR_MAX_TIMEOUT", 60, minimum=1)
# Raw results; the rollups answer for longer (PostgreSQL drops whole days).
LOOPR_RESULTS_RETENTION_DAYS = env_int("LOOPR_RESULTS_RETENTION_DAYS", 14, minimum=1)
# Rollups, per bucket size: minutes 14 days, hours 400 days, days 5 years.
LOOPR_ROLLUP_MINUTE_DAYS = env_int("LOOPR_ROLLUP_MINUTE_DAYS", 14, minimum=1)
LOOPR_ROLLUP_HOUR_DAYS = env_int("LOOPR_ROLLUP_HOUR_DAYS", 400, minimum=1)
LOOPR_ROLLUP_DAY_DAYS = env_int("LOOPR_ROLLUP_DAY_DAYS", 1826, minimum=1)
# Checks per probe task: a Celery task costs ~1 ms of CPU, so it must carry many.
LOOPR_BATCH_SIZE = env_int("LOOPR_BATCH_SIZE", 100, minimum=1, maximum=5000)
# Most monitors one dispatch tick claims; the rest wait for the next tick.
LOOPR_DISPATCH_LIMIT = env_int("LOOPR_DISPATCH_LIMIT", 20000, minimum=1)
# Seconds ahead a dispatch tick claims checks; probe nodes hold each check
# until its slot, so this should cover the tick period (1 s) and its jitter.
LOOPR_DISPATCH_LOOKAHEAD = env_float("LOOPR_DISPATCH_LOOKAHEAD", 1.5)
# A slot claimed at most this many seconds (or one interval) late is still
# checked, late, and so is every slot after it: a delayed tick or a restart
# leaves no gap. Later than that (downtime), a monitor is checked once and
# its schedule moves on.
LOOPR_DISPATCH_CATCH_UP = env_float("LOOPR_DISPATCH_CATCH_UP", 30.0)
# Concurrent checks in one probe process.
LOOPR_PROBE_THREADS = env_int("LOOPR_PROBE_THREADS", 64, minimum=1, maximum=1024)
# A probe node reports finished checks at least this often while a batch runs.
LOOPR_RESULT_FLUSH_SECONDS = env_float("LOOPR_RESULT_FLUSH_SECONDS", 1.0, minimum=0.05)
LOOPR_HEARTBEAT_INTERVAL = env_int("LOOPR_HEARTBEAT_INTERVAL", 10, minimum=1)
# Seconds past a slot's timeout that its verdict waits for regions yet to report.
LOOPR_VERDICT_GRACE = env_float("LOOPR_VERDICT_GRACE", 5.0)
# A probe node checks this URL (e.g. the central's landing page; not /healthz,
# which turns 503 when the central falls behind and would impair every node)
# to know its own vantage point works; while it fails, its failures are not counted.
LOOPR_CANARY_URL = os.environ.get("LOOPR_CANARY_URL", "")
LOOPR_CANARY_INTERVAL = env_float("LOOPR_CANARY_INTERVAL", 10.0, minimum=0.5)
LOOPR_ADMIN_PASSWORD = os.environ.get("LOOPR_ADMIN_PASSWORD", "")

# --- /healthz -----------------------------------------------------------------------
# The dispatch tick runs every second; ten missed ticks is beat or the central
# worker gone, not a slow tick (a tick gives up claiming after 0.9 s).
LOOPR_HEALTH_DISPATCH_STALE = env_float("LOOPR_HEALTH_DISPATCH_STALE", 10.0, minimum=2.0)
# No results for this long, while a live region serves a monitor checked at
# least twice in it, is ingest stopped.
LOOPR_HEALTH_INGEST_STALE = env_float("LOOPR_HEALTH_INGEST_STALE", 120.0, minimum=2.0)
# Messages waiting on any one central queue (central, ingest, notify, heartbeat).
LOOPR_HEALTH_MAX_BACKLOG = env_int("LOOPR_HEALTH_MAX_BACKLOG", 1000, minimum=1)
# For this long after the web starts, a loop that has not run since is starting,
# not failing: beat's first tick comes a few seconds after the processes start.
LOOPR_HEALTH_STARTUP_GRACE = env_float("LOOPR_HEALTH_STARTUP_GRACE", 30.0)

# --- Alerts -------------------------------------------------------------------------


def env_backoff(name: str, default: str) -> list[float]:
    raw = os.environ.get(name) or default
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: comma-separated seconds expected, got {raw!r}") from exc
    if not values or any(v < 0 for v in values):
        raise ImproperlyConfigured(f"{name}: at least one non-negative delay expected, got {raw!r}")
    return values


# Delays before the 2nd, 3rd, … delivery attempt (±20 % jitter); then it fails.
LOOPR_NOTIFY_BACKOFF = env_backoff("LOOPR_NOTIFY_BACKOFF", "5,30,120,600,1800,3600")
# The sweep leaves a due notification this long to its queued task first (a
# sender's lease, once taken, is its transport's timeout plus a margin: see
# notifications/services.py).
LOOPR_NOTIFY_SWEEP_GRACE = env_float("LOOPR_NOTIFY_SWEEP_GRACE", 30.0)
# Retries due sooner than this are queued with a countdown; later ones wait for the sweep.
LOOPR_NOTIFY_REQUEUE_MAX = env_float("LOOPR_NOTIFY_REQUEUE_MAX", 60.0)
# Webhooks to private, loopback and link-local addresses are refused unless allowed.
LOOPR_WEBHOOK_ALLOW_PRIVATE = env_bool("LOOPR_WEBHOOK_ALLOW_PRIVATE", False)

# --- API --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "loopr.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"channel-test": env_str("LOOPR_CHANNEL_TEST_RATE", "10/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loopr API",
    "DESCRIPTION": "Distributed uptime monitoring: monitors, results, regions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs pages load their scripts from drf-spectacular-sidecar's static
    # files (pinned with the rest), never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # One line per task received, run and scheduled is several lines a second
    # for the dispatch tick alone: a log nobody can read after an hour. Task
    # failures are still logged (at ERROR); LOG_LEVEL=DEBUG shows them all.
    "loggers": {
        name: {"level": "DEBUG" if env_str("LOG_LEVEL", "INFO") == "DEBUG" else "WARNING"}
        for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat")
    },
}
