from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.services import WORKDIR_PREFIX, claim_workdir, services_unavailable, sweep_stale_workdirs

from .harness import Stack, build_stack


def _tail(path: Path, lines: int = 80) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(none)"
    return f"===== {path.name} (last {lines} lines) =====\n" + "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def fault_stack():
    """One stack for every scenario (building it costs a cluster, migrations
    and process start-ups): its own Redis and PostgreSQL and every Procfile
    process. Everything it started is stopped, and its directory removed,
    when the session ends, pass or fail."""
    reason = services_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the fault-injection suite must run on CI, but: {reason}", pytrace=False)
        print(f"fault suite skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)
    # Under /tmp, not pytest's tmp_path: the `postgres` user must reach its
    # data directory, and pytest's base directory is root's alone.
    sweep_stale_workdirs()
    workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    claim_workdir(workdir)
    try:
        try:
            stack = build_stack(workdir)
        except BaseException:
            print("\n".join(_tail(p) for p in sorted(workdir.rglob("*.log"))))
            raise
        try:
            yield stack
        finally:
            stack.close()
    finally:
        keep = os.environ.get("LOOPR_FAULT_KEEP_LOGS")
        if keep:  # a directory to copy every log to, to read at leisure
            shutil.copytree(workdir, Path(keep) / workdir.name, ignore=shutil.ignore_patterns("pgdata", "redis"),
                            dirs_exist_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def stack(fault_stack: Stack, request):
    """The shared stack, with this test's part of every log printed if it fails."""
    sizes = fault_stack.test_log_sizes = fault_stack.log_sizes()
    yield fault_stack
    report = getattr(request.node, "rep_call", None)
    if report is not None and (report.failed or hasattr(report, "wasxfail")):
        print(fault_stack.logs_since(sizes))
