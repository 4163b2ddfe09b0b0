from __future__ import annotations

import functools
import os
import shutil
import sys

import pytest

from tests.support.processes import database_url

from .harness import REDIS_SERVER, Fleet
from .netns import namespaces_available


@functools.cache
def fleet_unavailable() -> str:
    """Why no fleet can be built here ("" when it can)."""
    available, reason = namespaces_available()
    if not available:
        return reason
    if not shutil.which(REDIS_SERVER):
        return f"`{REDIS_SERVER}` is not installed (the fleet runs a Redis of its own)"
    return ""


@pytest.fixture
def fleet_network_required():
    reason = fleet_unavailable()
    if not reason:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the fleet test must run on CI, but: {reason}", pytrace=False)
    print(f"fleet test skipped: {reason}", file=sys.stderr)
    pytest.skip(reason)


@pytest.fixture
def fleet(fleet_network_required, transactional_db, tmp_path, request):
    """A fleet of its own for one test: a Redis, central processes on the host
    (on the test database), probe nodes in network namespaces, all of it
    removed when the test ends, pass or fail (logs printed on failure)."""
    from workers.schedule import ensure_periodic_tasks

    ensure_periodic_tasks()  # the test database is flushed between tests
    built = Fleet(tmp_path, database_url())
    try:
        yield built
    finally:
        built.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(built.logs())
