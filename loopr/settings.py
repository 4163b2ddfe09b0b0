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


def env_choice(name: str, choices: list[str], default: str) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


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
    "loopr.apps.LooprAdminConfig",  # django.contrib.admin with Loopr's site (loopr/admin.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from here: /api/docs/ works offline
    "django_celery_beat",
    "axes",  # login throttling: the admin's and the API's session login
    "teams",  # before the apps whose objects teams own
    "monitors",
    "workers",
    "notifications",
    "statuspages",
    "configfile",  # monitoring as code: loopr.yaml plan, apply, export (on top of the others)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into a 429.
    "axes.middleware.AxesMiddleware",
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

# django-axes first: it refuses a login from a locked-out username and address
# before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# After this many failed logins of one username from one address, that pair
# is locked out for LOOPR_LOGIN_LOCKOUT_MINUTES (the right password included).
# The pair, not the address alone: behind a proxy every user shares one.
AXES_FAILURE_LIMIT = env_int("LOOPR_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_int("LOOPR_LOGIN_LOCKOUT_MINUTES", 15, minimum=1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- HTTPS and security headers -------------------------------------------------
# LOOPR_HTTPS: Loopr is reached over HTTPS (itself or behind a TLS proxy). It
# turns on the redirect to HTTPS, secure cookies and a year of HSTS; each can
# still be set on its own by its Django name.
LOOPR_HTTPS = env_bool("LOOPR_HTTPS", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", LOOPR_HTTPS)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", LOOPR_HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", LOOPR_HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if LOOPR_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Whether every subdomain is HTTPS-only too, and whether browsers are asked to
# preload HSTS, are the operator's to say; once said either way (the compose
# file says both), Django's reminders to think about them (W005, W021) have
# been answered. Unsaid, `check --deploy` still reminds.
SILENCED_SYSTEM_CHECKS = [check for name, check in (("SECURE_HSTS_INCLUDE_SUBDOMAINS", "security.W005"),
                                                    ("SECURE_HSTS_PRELOAD", "security.W021"))
                          if os.environ.get(name, "") != ""]
# The load balancer's health check speaks plain HTTP to the container.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Behind a TLS proxy: the header (and its value) by which the proxy says the
# request came over HTTPS, e.g. HTTP_X_FORWARDED_PROTO,https. Only set it if
# the proxy always sets (or strips) that header.
_proxy_header = _read("SECURE_PROXY_SSL_HEADER", env.list, [])
if _proxy_header and len(_proxy_header) != 2:
    raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER: expected HEADER,value, e.g. HTTP_X_FORWARDED_PROTO,https")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_header) if _proxy_header else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Content-Security-Policy (django-csp): scripts only from Loopr itself, never
# inline. The admin, the API docs (Swagger UI's split view, ReDoc) and the
# landing page work under it; Swagger UI and ReDoc style inline and ReDoc runs
# a web worker from a blob.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

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
# Django's cache lives on the same Redis (loopr/cache.py), so every web
# process serves the one status-page snapshot and the one set of uptime
# figures the central worker keeps (and DRF's throttles count across
# processes). Its keys start with LOOPR_CACHE_PREFIX: two installs sharing a
# Redis database, or two test runs, set different ones.
LOOPR_CACHE_PREFIX = env_str("LOOPR_CACHE_PREFIX", "loopr-cache")
if not re.fullmatch(r"[-a-zA-Z0-9_.]{1,64}", LOOPR_CACHE_PREFIX):
    raise ImproperlyConfigured(f"LOOPR_CACHE_PREFIX: letters, digits, -, _ and . only, got {LOOPR_CACHE_PREFIX!r}")
CACHES = {
    "default": {
        "BACKEND": "loopr.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": LOOPR_CACHE_PREFIX,
        # A Redis that hangs costs a request two seconds, then the cache misses.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
# A batch whose node died unacknowledged goes back to its queue after
# this many seconds; it must exceed the longest batch (LOOPR_MAX_TIMEOUT
# plus queueing), or a slow batch would be run twice (harmless, wasteful).
# A batch's expiry is derived from it (workers/dispatch.py batch_expires), so
# that a batch given back after this timeout is still run, whatever the
# interval.
LOOPR_BROKER_VISIBILITY_TIMEOUT = env_int("LOOPR_BROKER_VISIBILITY_TIMEOUT", 300, minimum=2)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": LOOPR_BROKER_VISIBILITY_TIMEOUT,
    # Look for abandoned messages often enough that the timeout above is
    # what decides how fast a dead node's batch moves on.
    "unacked_restore_interval": max(1, LOOPR_BROKER_VISIBILITY_TIMEOUT // 10),
    "unacked_restore_throttle": 1,
}

# A probe node (it holds a node token) keeps its unacknowledged batches in
# keys named for its region, which its region's Redis user may use and no
# other (workers/broker_acl.py); the central keeps kombu's defaults.
if os.environ.get("LOOPR_NODE_TOKEN"):
    _region = os.environ.get("LOOPR_REGION") or "local"
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        unacked_key=f"unacked.{_region}", unacked_index_key=f"unacked_index.{_region}",
        unacked_mutex_key=f"unacked_mutex.{_region}",
    )
# Remote-control queues without an expiry: with one, kombu refreshes their
# bindings by Lua script, and a probe node's Redis user would need EVALSHA
# (workers/broker_acl.py). Their Redis lists stay empty (broadcasts travel by
# pub/sub); what remains of a gone worker is one member of a binding set.
CELERY_CONTROL_QUEUE_EXPIRES = None
# Whether Loopr creates and updates each region's Redis ACL user (its nodes'
# token hashes as passwords) when a token is issued or revoked and when the
# central worker starts. Needs a broker user allowed to run ACL SETUSER.
LOOPR_BROKER_ACL = env_bool("LOOPR_BROKER_ACL", False)

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
    # The dispatch tick has a queue (and a process) of its own: no backlog of
    # results or deliveries can delay it.
    "workers.dispatch_due_checks": {"queue": "dispatch"},
    "monitors.ingest_results": {"queue": "ingest"},
    # Heartbeats have a queue of their own: behind a backlog of results they
    # would arrive late, their region would be judged dead and get no checks.
    "workers.record_heartbeat": {"queue": "heartbeat"},
    "notifications.deliver_notification": {"queue": "notify"},
}
CELERY_BEAT_SCHEDULER = "workers.beat:Scheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Every message is checked against Celery's protocol and its task's signature
# before Celery sees it: a malformed one is dropped and counted, never fatal
# (loopr/broker.py; the transport half is installed in loopr/celery.py).
CELERY_WORKER_CONSUMER = "loopr.broker:Consumer"

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
# After a pause of dispatch (a restart, an outage, overload) the slots of the
# last this many seconds (at least one interval) are still checked, late;
# older ones are recorded as missed, with the reason.
LOOPR_DISPATCH_CATCH_UP = env_float("LOOPR_DISPATCH_CATCH_UP", 120.0, minimum=0.0)
# Most late slots (beyond each monitor's first) one tick sends while catching
# up: a backlog drains at this pace instead of landing on the probes at once.
LOOPR_DISPATCH_CATCH_UP_BUDGET = env_int("LOOPR_DISPATCH_CATCH_UP_BUDGET", 2000, minimum=0)
# Checks in flight at once in one probe process (greenlets, each holding a
# socket or two: the process raises its open-files limit to match). The
# Procfile's LOOPR_PROBE_CONCURRENCY is how many batches it holds at once.
LOOPR_PROBE_CHECKS = env_int("LOOPR_PROBE_CHECKS", 2000, minimum=1, maximum=50000)
# A finished check's result waits at most this long for others of its batch
# to travel with it; the batch's last results go at once.
LOOPR_RESULT_FLUSH_SECONDS = env_float("LOOPR_RESULT_FLUSH_SECONDS", 1.0, minimum=0.05)
LOOPR_HEARTBEAT_INTERVAL = env_int("LOOPR_HEARTBEAT_INTERVAL", 10, minimum=1)
# A node's signed report of results older than this is refused (a replayed
# result changes nothing; this bounds how long a captured one is accepted).
# A day, so that the backlog a central outage leaves is still stored.
LOOPR_REPORT_MAX_AGE = env_int("LOOPR_REPORT_MAX_AGE", 86400, minimum=60)
# Seconds past a slot's timeout that its verdict waits for regions yet to report.
LOOPR_VERDICT_GRACE = env_float("LOOPR_VERDICT_GRACE", 5.0)
# A probe node checks this URL (e.g. the central's landing page; not /healthz,
# which turns 503 when the central falls behind and would impair every node)
# to know its own vantage point works; while it fails, its failures are not counted.
LOOPR_CANARY_URL = os.environ.get("LOOPR_CANARY_URL", "")
LOOPR_CANARY_INTERVAL = env_float("LOOPR_CANARY_INTERVAL", 10.0, minimum=0.5)
LOOPR_ADMIN_PASSWORD = os.environ.get("LOOPR_ADMIN_PASSWORD", "")
# Where Loopr is reached from outside (https://loopr.example.com): heartbeats'
# ping URLs and the acknowledgement links in alerts start with it. Unset, ping
# URLs are built from the request's host and links point at the quick start's
# address (an alert has no request to take a host from).
LOOPR_PUBLIC_URL = env_str("LOOPR_PUBLIC_URL", "").rstrip("/")
if LOOPR_PUBLIC_URL and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", LOOPR_PUBLIC_URL):
    raise ImproperlyConfigured(f"LOOPR_PUBLIC_URL: an http(s):// URL, got {LOOPR_PUBLIC_URL!r}")
# A heartbeat's pings taken per minute; more are answered 429 (a script in a loop).
# How long an invitation's link works (seconds; default 7 days).
LOOPR_INVITATION_MAX_AGE = env_int("LOOPR_INVITATION_MAX_AGE", 7 * 86400, minimum=60)

LOOPR_PING_RATE = env_int("LOOPR_PING_RATE", 60, minimum=1)

# --- /healthz -----------------------------------------------------------------------
# The dispatch tick runs every second; ten missed ticks is beat or the central
# worker gone, not a slow tick (a tick gives up claiming after 0.9 s).
LOOPR_HEALTH_DISPATCH_STALE = env_float("LOOPR_HEALTH_DISPATCH_STALE", 10.0, minimum=2.0)
# The central worker sweeps notifications every 5 s: three missed sweeps is the
# worker gone (ingest and alerts stopped), long before ingest looks stale.
LOOPR_HEALTH_CENTRAL_STALE = env_float("LOOPR_HEALTH_CENTRAL_STALE", 15.0, minimum=6.0)
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
# Which addresses a monitor may reach (loopr/addresses.py): checked by the
# probe node at connect time (its own setting), and when a monitor is saved.
LOOPR_MONITOR_TARGETS = env_choice("LOOPR_MONITOR_TARGETS", ["any", "no-metadata", "public"], "any")


def env_url(name: str, default: str) -> str:
    value = env_str(name, default).rstrip("/")
    if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
        raise ImproperlyConfigured(f"{name}: expected an http:// or https:// URL, got {value!r}")
    return value


# An acknowledgement link works for this many seconds (and only while its incident is open).
LOOPR_ACK_LINK_MAX_AGE = env_int("LOOPR_ACK_LINK_MAX_AGE", 7 * 24 * 3600, minimum=60)
# Providers' API bases: settings so that tests (or a proxy) can stand in for them.
LOOPR_PAGERDUTY_URL = env_url("LOOPR_PAGERDUTY_URL", "https://events.pagerduty.com")
LOOPR_OPSGENIE_URL = env_url("LOOPR_OPSGENIE_URL", "https://api.opsgenie.com")
LOOPR_OPSGENIE_EU_URL = env_url("LOOPR_OPSGENIE_EU_URL", "https://api.eu.opsgenie.com")
LOOPR_TELEGRAM_URL = env_url("LOOPR_TELEGRAM_URL", "https://api.telegram.org")
LOOPR_PUSHOVER_URL = env_url("LOOPR_PUSHOVER_URL", "https://api.pushover.net")

# --- API --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "teams.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "loopr.api.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "loopr.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "loopr.api.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "loopr.schema.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "channel-test": env_str("LOOPR_CHANNEL_TEST_RATE", "10/min"),
        "token-create": env_str("LOOPR_TOKEN_CREATE_RATE", "20/hour"),
        "invitation-create": env_str("LOOPR_INVITATION_RATE", "20/hour"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loopr API",
    "DESCRIPTION": "Distributed uptime monitoring: monitors, results, regions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request and response bodies as separate components: a request's
    # read-only fields are left out, and its non-blank strings say minLength 1.
    "COMPONENT_SPLIT_REQUEST": True,
    # The API's contract is JSON. Forms are still read (the browsable API's
    # HTML forms post them), but they have no null and no types, so the
    # schema does not offer them to clients.
    "PARSER_WHITELIST": ["loopr.api.JSONParser"],
    # Enums are named after fields; these choice sets are shared by several
    # field names, or share a field name (kind) with others.
    "ENUM_NAME_OVERRIDES": {
        f"{name}Enum": f"{app}.choices.{name}" for app, name in [
            ("monitors", "MonitorKind"), ("monitors", "MaintenanceKind"), ("monitors", "PingKind"),
            ("monitors", "Health"), ("monitors", "ErrorKind"), ("notifications", "ChannelKind"),
        ]
    } | {
        # Several resources have a `status`; each vocabulary gets its own name.
        "StatusReportStatusEnum": "statuspages.choices.ReportStatus",
    },
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
