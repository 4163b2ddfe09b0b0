"""Beat's scheduler: django-celery-beat's, made to wait out a database outage
and to stop cleanly.

Its full re-read of the schedule (every five minutes, and whenever it sees a
change) is not guarded: an OperationalError there ends beat ("beat raised
exception"), and with it every periodic task until something restarts it.
Here beat keeps ticking on the schedule it already holds and reads it again
once the database is back.

Celery's own SIGTERM/SIGINT handler saves the schedule and releases the
broker connection from inside the signal handler, wherever the main thread
is. When the signal lands while a due task is being published, the publish's
socket is closed under it: the task is lost, an ERROR with a traceback is
logged, the SystemExit is swallowed by that error, and beat runs on until it
is killed (seen in the quick start's soak on a normal Ctrl-C). Here a stop
asked for during a tick or a save waits for it to finish; one asked for while
beat sleeps ends the sleep at once.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime

from celery import platforms
from django.db import DatabaseError, InterfaceError, close_old_connections
from django_celery_beat.schedulers import DatabaseScheduler

log = logging.getLogger(__name__)


class Scheduler(DatabaseScheduler):
    @property
    def schedule(self) -> dict:
        try:
            return super().schedule
        except (DatabaseError, InterfaceError) as exc:
            if self._schedule is None:  # nothing to go on with: at start-up
                raise
            log.warning("beat: cannot read the schedule (%s: %s); ticking on the one it has",
                        type(exc).__name__, exc)
            close_old_connections()
            # Read it whole at the next tick, not five minutes from now.
            self._last_full_sync = datetime.min
            return self._schedule

    stop_requested = False
    _busy = 0

    @contextmanager
    def _working(self):
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    def tick(self, *args, **kwargs) -> float:
        # A stop asked for during a tick or a save ends beat here, between
        # two publishes (the service saves the schedule on its way out).
        if self.stop_requested:
            raise SystemExit()
        with self._working():
            interval = super().tick(*args, **kwargs)
        if self.stop_requested:
            raise SystemExit()
        return interval

    def sync(self) -> None:
        with self._working():
            super().sync()

    def request_stop(self) -> None:
        """What SIGTERM and SIGINT do (from a signal handler: no logging)."""
        first = not self.stop_requested
        self.stop_requested = True
        if first and not self._busy:
            # Asleep between ticks: wake up now. A second signal does not
            # cut short the saving and releasing the first one started.
            raise SystemExit()


def install_stop_handler(service) -> None:
    """Replace Celery's stop handler (see the module's docstring); beat_init
    is sent after Celery installed its own."""
    scheduler = service.scheduler
    if not isinstance(scheduler, Scheduler):
        return

    def stop(signum, frame) -> None:
        scheduler.request_stop()

    platforms.signals.update(SIGTERM=stop, SIGINT=stop)
