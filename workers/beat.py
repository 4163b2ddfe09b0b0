"""Beat's scheduler: django-celery-beat's, made to wait out a database outage.

Its full re-read of the schedule (every five minutes, and whenever it sees a
change) is not guarded: an OperationalError there ends beat ("beat raised
exception"), and with it every periodic task until something restarts it.
Here beat keeps ticking on the schedule it already holds and reads it again
once the database is back.
"""

from __future__ import annotations

import logging
from datetime import datetime

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
