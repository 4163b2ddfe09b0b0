"""A channel chooses which events it gets, and may have quiet hours in a time
zone during which everything but `down` waits until they end."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest

from monitors.choices import Event
from notifications.models import Channel, Notification
from notifications.services import notify
from tests.factories import ChannelFactory, IncidentFactory, MonitorFactory

pytestmark = pytest.mark.django_db

CHANNELS = "/api/v1/channels/"
BERLIN = ZoneInfo("Europe/Berlin")


def test_a_channel_gets_only_the_events_it_chose(user):
    monitor = MonitorFactory(owner=user)
    picky = ChannelFactory(owner=user, events=["down", "up"])
    everything = ChannelFactory(owner=user)
    monitor.channels.set([picky, everything])

    for event in (Event.DOWN, Event.FLAPPING, Event.UP, Event.ACKNOWLEDGED):
        notify(monitor, event)

    assert sorted(Notification.objects.filter(channel=picky).values_list("event", flat=True)) == ["down", "up"]
    assert Notification.objects.filter(channel=everything).count() == 4


def test_quiet_hours_hold_everything_but_down_until_they_end(user):
    monitor = MonitorFactory(owner=user)
    channel = ChannelFactory(owner=user, quiet_hours_start=time(22), quiet_hours_end=time(7),
                             quiet_hours_timezone="Europe/Berlin")
    monitor.channels.set([channel])
    night = datetime(2026, 12, 6, 23, 30, tzinfo=BERLIN)
    incident = IncidentFactory(monitor=monitor)

    down = notify(monitor, Event.DOWN, incident=incident, at=night)[0]
    up = notify(monitor, Event.UP, incident=incident, at=night + timedelta(minutes=20))[0]

    # Down goes now; the recovery waits for 07:00 Berlin time the next morning.
    assert down.next_attempt_at == night
    assert up.next_attempt_at == datetime(2026, 12, 7, 7, 0, tzinfo=BERLIN)
    # The sweep leaves it alone until then, and takes it up after.
    grace = timedelta(seconds=30)
    assert not Notification.objects.lost(datetime(2026, 12, 7, 6, 59, tzinfo=BERLIN), grace).filter(pk=up.pk).exists()
    assert Notification.objects.lost(datetime(2026, 12, 7, 7, 1, tzinfo=BERLIN), grace).filter(pk=up.pk).exists()


@pytest.mark.parametrize(("start", "end", "local", "until"), [
    (time(22), time(7), datetime(2026, 12, 6, 21, 59), None),
    (time(22), time(7), datetime(2026, 12, 6, 22, 0), datetime(2026, 12, 7, 7, 0)),
    (time(22), time(7), datetime(2026, 12, 7, 3, 0), datetime(2026, 12, 7, 7, 0)),
    (time(22), time(7), datetime(2026, 12, 7, 7, 0), None),
    (time(12), time(14), datetime(2026, 12, 7, 13, 0), datetime(2026, 12, 7, 14, 0)),
    (time(12), time(14), datetime(2026, 12, 7, 14, 30), None),
])
def test_quiet_hours_are_read_in_the_channels_time_zone_across_midnight(start, end, local, until):
    channel = Channel(quiet_hours_start=start, quiet_hours_end=end, quiet_hours_timezone="Europe/Berlin")

    held = channel.quiet_until(local.replace(tzinfo=BERLIN).astimezone(dt_timezone.utc))

    assert held == (until.replace(tzinfo=BERLIN) if until else None)


def test_filters_and_quiet_hours_are_set_through_the_api(api):
    response = api.post(CHANNELS, {"name": "night", "kind": "email", "target": "ops@example.com",
                                   "events": ["down", "up"], "quiet_hours_start": "22:00",
                                   "quiet_hours_end": "07:00", "quiet_hours_timezone": "Europe/Berlin"},
                        format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["events"], body["quiet_hours_start"], body["quiet_hours_timezone"]) == (
        ["down", "up"], "22:00:00", "Europe/Berlin")


@pytest.mark.parametrize(("fields", "field"), [
    ({"events": ["down", "sideways"]}, "events"),
    ({"events": "down"}, "events"),
    ({"events": ["down", "down"]}, "events"),
    ({"quiet_hours_start": "22:00"}, "quiet_hours_end"),
    ({"quiet_hours_start": "22:00", "quiet_hours_end": "22:00"}, "quiet_hours_end"),
    ({"quiet_hours_timezone": "Mars/Olympus"}, "quiet_hours_timezone"),
])
def test_a_wrong_filter_or_quiet_hours_is_a_400_naming_the_field(api, fields, field):
    response = api.post(CHANNELS, {"name": "x", "kind": "email", "target": "ops@example.com", **fields},
                        format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
