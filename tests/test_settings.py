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
