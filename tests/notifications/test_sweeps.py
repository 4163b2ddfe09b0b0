"""The periodic sweeps run every few seconds on every installation, so when
there is nothing for them to do they must cost next to nothing."""

from __future__ import annotations

import pytest

from notifications import services
from tests.factories import ChannelFactory, IncidentFactory, MonitorFactory

pytestmark = pytest.mark.django_db


def test_the_reminder_sweep_asks_one_question_when_no_channel_wants_reminders(django_assert_num_queries):
    # An outage in progress, but on channels without reminder_interval, or
    # with one but disabled: nobody to remind.
    monitor = MonitorFactory(health="down")
    monitor.current_incident = IncidentFactory(monitor=monitor)
    monitor.save()
    monitor.channels.set([ChannelFactory(), ChannelFactory(reminder_interval=3600, enabled=False)])
    with django_assert_num_queries(1):
        assert services.send_reminders() == 0


def test_the_notification_sweep_asks_one_question_when_nothing_is_due(django_assert_num_queries):
    with django_assert_num_queries(1):
        assert services.sweep() == 0
