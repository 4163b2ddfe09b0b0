"""The fault suite's own servers (tests/support/services.py): what a killed
run leaves behind is cleaned up by the next one."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import redis

from tests.support.services import WORKDIR_PREFIX, RedisServer, claim_workdir, sweep_stale_workdirs


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
def test_it_stops_the_servers_of_a_run_that_died_and_removes_its_directory_but_not_a_live_runs():
    base = Path(tempfile.mkdtemp(prefix="loopr-sweep-test-"))
    try:
        stale, live = base / f"{WORKDIR_PREFIX}stale", base / f"{WORKDIR_PREFIX}live"
        stale.mkdir()
        live.mkdir()
        server = RedisServer(stale)
        dead = subprocess.Popen(["true"])
        dead.wait()
        # A run whose process is gone (a pid no longer running), and this one.
        (stale / "owner").write_text(f"{dead.pid} 0")
        claim_workdir(live)

        swept = sweep_stale_workdirs(base)

        assert swept == [stale] and not stale.exists() and live.exists()
        server.proc.wait(timeout=10)  # killed: it exits
        with pytest.raises(redis.ConnectionError):
            redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1).ping()
    finally:
        shutil.rmtree(base, ignore_errors=True)
