"""Beat waits out a database outage instead of exiting."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.db import OperationalError

from loopr.celery import app
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
