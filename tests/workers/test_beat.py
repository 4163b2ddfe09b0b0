"""Beat waits out a database outage instead of exiting, and stops cleanly."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from urllib.parse import urlsplit

import pytest
import redis
from django.db import OperationalError

from loopr.celery import app
from tests.support.processes import wait_for
from tests.support.proxy import HoldsReply
from workers.beat import Scheduler
from workers.schedule import ensure_periodic_tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_beat_ticks_on_its_schedule_while_the_database_is_away_and_reads_it_again_after(monkeypatch):
    ensure_periodic_tasks()
    scheduler = Scheduler(app=app, lazy=True)
    scheduler.setup_schedule()
    held = dict(scheduler.schedule)
    assert "loopr: dispatch due checks" in held

    def database_away(self):
        raise OperationalError("the database system is shutting down")

    # The five-minute full re-read comes while PostgreSQL restarts: beat keeps
    # the schedule it holds instead of raising (which ends beat).
    monkeypatch.setattr(Scheduler, "all_as_schedule", database_away)
    scheduler._last_full_sync = datetime.min
    assert set(scheduler.schedule) == set(held)
    # Back: the next look reads the whole schedule at once.
    monkeypatch.undo()
    reads = []
    original = Scheduler.all_as_schedule
    monkeypatch.setattr(Scheduler, "all_as_schedule", lambda self: reads.append(1) or original(self))
    assert set(scheduler.schedule) == set(held) and reads == [1]


def test_beat_stopped_in_the_middle_of_a_publish_finishes_it_and_exits_without_an_error(processes, settings):
    broker = urlsplit(settings.REDIS_URL)
    if broker.scheme != "redis":
        pytest.skip("needs a TCP broker to stand between beat and it")
    proxy = HoldsReply((broker.hostname, broker.port or 6379), b"LPUSH")
    try:
        beat = processes.beat(REDIS_URL=f"redis://127.0.0.1:{proxy.port}{broker.path}")
        wait_for(lambda: proxy.seen >= 2, timeout=60, message="beat to publish")
        # The next publish (the dispatch tick, every second) waits for
        # Redis's answer when SIGTERM arrives, as a Ctrl-C can land anywhere.
        proxy.arm()
        wait_for(proxy.holding.is_set, timeout=10, message="a publish to be held")
        beat.send_signal(signal.SIGTERM)
        time.sleep(1)
        proxy.release()
        code = beat.wait(timeout=10)
    finally:
        proxy.release()
        proxy.close()
    log = processes.log_text()
    assert code == 0, log
    assert "ERROR" not in log and "Traceback" not in log, log
    # Nothing was lost on the way out: every task beat sent is in its queue
    # (nothing consumes them here), the one the stop interrupted included.
    r = redis.Redis.from_url(settings.REDIS_URL)
    queued = sum(r.llen(key) for key in r.scan_iter(_type="list"))
    assert queued == proxy.seen and queued >= 3
