from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from monitors.models import Monitor
from workers.models import Region


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


class MonitorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Monitor

    owner = factory.SubFactory(UserFactory, username="owner")
    name = factory.Sequence(lambda n: f"monitor {n}")
    url = "http://127.0.0.1:9/"
    interval = 60
    timeout = 5.0
