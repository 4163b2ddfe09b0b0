from __future__ import annotations

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from monitors.models import Incident, MaintenanceWindow, Monitor
from notifications.models import Channel, Notification
from teams.models import Membership, Team
from workers.models import Region, WorkerNode


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("name",)

    name = "local"
    last_seen_at = None


class WorkerNodeFactory(factory.django.DjangoModelFactory):
    """A probe node by name (results store the node by id)."""

    class Meta:
        model = WorkerNode
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"probe{n}@host")
    region = factory.SubFactory(RegionFactory)
    last_heartbeat_at = factory.LazyFunction(timezone.now)


class MonitorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Monitor

    owner = factory.SubFactory(UserFactory, username="owner")
    name = factory.Sequence(lambda n: f"monitor {n}")
    url = "http://127.0.0.1:9/"
    interval = 60
    timeout = 5.0


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel

    owner = factory.SubFactory(UserFactory, username="owner")
    name = factory.Sequence(lambda n: f"channel {n}")
    kind = "email"
    target = factory.Sequence(lambda n: f"ops{n}@example.com")


class IncidentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Incident

    monitor = factory.SubFactory(MonitorFactory)
    started_at = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=10))
    confirmed_at = factory.LazyAttribute(lambda o: o.started_at + timedelta(minutes=1))
    cause_kind = "status"
    cause = "HTTP 503, expected 200-399"
    regions = factory.LazyFunction(lambda: ["local"])


class NotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notification

    channel = factory.SubFactory(ChannelFactory)
    monitor = factory.SubFactory(MonitorFactory, owner=factory.SelfAttribute("..channel.owner"))
    incident = None
    event = "down"
    context = factory.LazyFunction(dict)


class MaintenanceWindowFactory(factory.django.DjangoModelFactory):
    """A one-off window, active now, for the monitors passed as `monitors=[...]`."""

    class Meta:
        model = MaintenanceWindow
        skip_postgeneration_save = True

    owner = factory.SubFactory(UserFactory, username="owner")
    name = factory.Sequence(lambda n: f"window {n}")
    kind = "once"
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))

    @factory.post_generation
    def monitors(self, create, extracted, **kwargs):
        if create and extracted:
            self.monitors.set(extracted)


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"team {n}")


def member(team: Team, user, role: str) -> Membership:
    """`user` in `team` with `role` (changed if they are a member already)."""
    membership, _ = Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
    return membership


def client_of(user) -> APIClient:
    """An API client signed in as `user` (a session, as the browsable API's)."""
    client = APIClient()
    client.force_authenticate(user)
    return client
