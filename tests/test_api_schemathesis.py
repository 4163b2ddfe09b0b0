"""Schemathesis against the live schema of a real web process (issue 11):
every operation, every check, a fixed seed, as a user who has data; no server
error and no response that breaks the schema.

Run it alone with `pytest -m schemathesis`. The run is bounded by
`--max-time` (schemathesis stops generating when it is spent), so the suite's
wall time stays within a few minutes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.utils import timezone

from monitors.models import CheckResult
from notifications.models import EscalationPolicy
from teams.models import ApiToken
from tests.factories import (
    ChannelFactory,
    IncidentFactory,
    MaintenanceWindowFactory,
    MonitorFactory,
    NotificationFactory,
    UserFactory,
)
from workers.models import Region

pytestmark = [pytest.mark.schemathesis]

SEED = 1134
# Seconds schemathesis may spend generating; its setup and the web's start
# come on top (about 15 s on the 2-core CI machine).
MAX_TIME = 120
ST = str(Path(sys.executable).with_name("st"))
CONFIG = Path(__file__).with_name("schemathesis.toml")


def a_user_with_data(username: str = "fuzzer") -> str:
    """A user owning one of everything the API lists, and their API token."""
    # Staff, so that the operator's read-only endpoints (nodes) answer too.
    user = UserFactory(username=username, is_staff=True)
    region = Region.objects.get_or_create(name="local")[0]
    monitor = MonitorFactory(owner=user, name="fuzzed-http")
    MonitorFactory(owner=user, name="fuzzed-heartbeat", kind="heartbeat", url="", interval=300)
    channel = ChannelFactory(owner=user, name="fuzzed-email")
    monitor.channels.set([channel])
    MaintenanceWindowFactory(owner=user, name="fuzzed-window", monitors=[monitor])
    incident = IncidentFactory(monitor=monitor)
    NotificationFactory(channel=channel, monitor=monitor, incident=incident)
    EscalationPolicy.objects.create(owner=user, name="fuzzed-policy",
                                    steps=[{"after_minutes": 0, "channels": [channel.pk]}])
    now = timezone.now()
    for minutes in range(5):
        at = now - timedelta(minutes=minutes)
        CheckResult.objects.create(monitor=monitor, region=region, scheduled_at=at, checked_at=at, ok=minutes != 2,
                                   latency_ms=12.5, status_code=200 if minutes != 2 else 503,
                                   error_kind="ok" if minutes != 2 else "status")
    # The fuzzer revokes tokens by id (DELETE /api/v1/tokens/{id}/), trying 1
    # and the other bounds first: its own key's id is far from them, or the
    # run would go on as 401s from there.
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [ApiToken._meta.db_table, 7_340_117_531])
    return ApiToken.objects.cli_key(user)


def test_schemathesis_finds_no_server_error_and_no_schema_violation(processes, tmp_path):
    token = a_user_with_data()
    base = processes.web(workers=2)
    # Fetched here, with time to spare: each web worker builds the schema on
    # its first request, longer than schemathesis waits for it.
    schema = requests.get(f"{base}/api/schema/?format=json", timeout=120)
    assert schema.status_code == 200
    (tmp_path / "schema.json").write_bytes(schema.content)
    # All checks, every operation, in every phase (examples, coverage,
    # fuzzing, stateful); one worker: hypothesis' lambda introspection is not
    # thread-safe and fails a run of two now and then.
    run = subprocess.run(
        [ST, "--no-color", "--config-file", str(CONFIG), "run", str(tmp_path / "schema.json"), "--url", base,
         "--header", f"Authorization: Token {token}",
         "--checks", "all", "--seed", str(SEED), "--max-time", str(MAX_TIME),
         "--workers", "1", "--request-timeout", "30", "--output-truncate", "true"],
        capture_output=True, text=True, timeout=MAX_TIME + 120, cwd=tmp_path,  # its replay files go there
    )
    (tmp_path / "schemathesis.out").write_text(run.stdout + run.stderr)
    # Exit status 0: no failure of any check (a server error, a response or
    # status or header the schema does not document, schema-violating input
    # accepted, schema-valid input refused beyond tests/schemathesis.toml's
    # exceptions) and no error.
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    # Every operation of the schema was selected and tested.
    selected = re.search(r"Selected: (\d+)/(\d+)", run.stdout)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert selected and tested, run.stdout[-5000:]
    assert selected[1] == selected[2] == tested[1], run.stdout[-5000:]
