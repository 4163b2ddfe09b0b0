from __future__ import annotations

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from teams.models import ApiToken
from tests.factories import UserFactory
from tests.support.processes import Processes, database_url
from tests.support.targets import start_target


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob")


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    token, key = ApiToken.objects.issue(user, "tests")
    # As a token in use: its last use (written at most once a minute) is
    # recent, so that tests counting a request's queries count the request's own.
    token.record_use()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def target():
    server = start_target()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _empty_broker() -> None:
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture
def processes(transactional_db, tmp_path, request):
    """Start real Loopr processes on the test database and broker; all are
    stopped (and their logs printed on failure) when the test ends."""
    _empty_broker()
    from workers.schedule import ensure_periodic_tasks

    ensure_periodic_tasks()  # the test database is flushed between tests
    procs = Processes(
        tmp_path,
        {
            "DATABASE_URL": database_url(),
            "LOOPR_MIN_INTERVAL": "1",
            "LOOPR_HEARTBEAT_INTERVAL": "1",
            "LOOPR_RESULT_FLUSH_SECONDS": "0.2",
            "PYTHONUNBUFFERED": "1",
        },
    )
    yield procs
    procs.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(procs.logs())
    _empty_broker()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing costs ~0.3 s a user; the tests make many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_kept_minutes():
    # A minute series' closed hours are kept per process; a test's ids and
    # hours may be an earlier test's (rolled-back sequences on SQLite).
    from monitors.api.minutes import kept

    kept.clear()


@pytest.fixture(autouse=True)
def _fresh_throttles():
    # DRF keeps its throttle counts in the (process-wide) cache.
    from django.core.cache import cache

    cache.clear()
