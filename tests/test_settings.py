from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'loopr.settings'); django.setup()"

# name: (environment changes, None meaning "unset"; the variable the error must name)
BAD = {
    "interval not a number": ({"LOOPR_MIN_INTERVAL": "abc"}, "LOOPR_MIN_INTERVAL"),
    "interval zero": ({"LOOPR_MIN_INTERVAL": "0"}, "LOOPR_MIN_INTERVAL"),
    "debug not a boolean": ({"DEBUG": "maybe"}, "DEBUG"),
    "database scheme unknown": ({"DATABASE_URL": "nonsense://x"}, "DATABASE_URL"),
    "database url without scheme": ({"DATABASE_URL": "garbage"}, "DATABASE_URL"),
    "broker not redis": ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    "time zone unknown": ({"TIME_ZONE": "Mars/Olympus"}, "TIME_ZONE"),
    "region with spaces": ({"LOOPR_REGION": "bad region!"}, "LOOPR_REGION"),
    "cache prefix with a glob": ({"LOOPR_CACHE_PREFIX": "loopr*"}, "LOOPR_CACHE_PREFIX"),
    "flush seconds not a number": ({"LOOPR_RESULT_FLUSH_SECONDS": "soon"}, "LOOPR_RESULT_FLUSH_SECONDS"),
    "no secret key in production": ({"SECRET_KEY": None, "DEBUG": None}, "SECRET_KEY"),
}
GOOD = {
    "test defaults": {},
    "no secret key in development": {"SECRET_KEY": None, "DEBUG": "true"},
    "an empty database url means the default": {"DATABASE_URL": ""},
}


def environment(changes: dict[str, str | None]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE"}}
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@pytest.fixture(scope="module")
def startups() -> dict[str, tuple[int, str]]:
    """Start Django once per case, all at once (each start costs ~0.4 s)."""
    cases = {name: changes for name, (changes, _) in BAD.items()} | GOOD
    procs = {
        name: subprocess.Popen([sys.executable, "-c", SETUP], cwd=ROOT, env=environment(changes),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for name, changes in cases.items()
    }
    return {name: (proc.wait(timeout=60), proc.stderr.read()) for name, proc in procs.items()}


@pytest.mark.parametrize(
    "case",
    list(BAD),
)
def test_a_bad_setting_stops_start_up_with_a_message_naming_it(startups, case):
    returncode, stderr = startups[case]
    variable = BAD[case][1]
    assert returncode != 0
    # The last line is the error itself; the traceback above it names the
    # variable in source lines whatever went wrong, so it proves nothing.
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: ") and variable in last


@pytest.mark.parametrize("case", GOOD)
def test_a_good_configuration_starts(startups, case):
    returncode, stderr = startups[case]
    assert returncode == 0, stderr


def broker_url_for(changes: dict[str, str | None]) -> str:
    code = SETUP + "; from django.conf import settings; print(settings.CELERY_BROKER_URL)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment(changes), capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_without_redis_url_the_broker_is_the_embedded_one_that_dev_py_starts(tmp_path):
    import dev

    # manage.py, run by hand beside `dev.py run`, must find the same broker.
    url = broker_url_for({"REDIS_URL": None, "LOOPR_VAR_DIR": str(tmp_path)})
    assert url == f"redis+socket://{dev.embedded_broker_socket(tmp_path)}"


def test_a_unix_socket_redis_url_is_given_to_celery_in_kombus_spelling():
    assert broker_url_for({"REDIS_URL": "unix:///run/redis/redis.sock"}) == "redis+socket:///run/redis/redis.sock"
    assert broker_url_for({"REDIS_URL": "redis://127.0.0.1:6379/3"}) == "redis://127.0.0.1:6379/3"
