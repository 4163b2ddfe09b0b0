"""The probe engine and the probes run on gevent in a probe node, so their
tests run on gevent too: in a pytest of their own that patches the standard
library before anything is imported, as Celery's gevent pool does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gevent import monkey

ROOT = Path(__file__).resolve().parents[2]
ON_GEVENT = ["tests/workers/test_probe_runner.py", "tests/monitors/test_probe_http.py",
             "tests/monitors/test_probe_tcp.py"]


@pytest.mark.skipif(monkey.is_module_patched("socket"), reason="already on gevent")
def test_the_probe_engine_and_the_probes_pass_their_tests_on_gevent():
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ON_GEVENT],
        cwd=ROOT, env={**os.environ, "LOOPR_TESTS_ON_GEVENT": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    # Nothing skipped for want of gevent: the engine's tests really ran.
    assert " skipped" not in run.stdout.splitlines()[-1], run.stdout[-3000:]
