"""A monitor's kind: explicit, or taken from the URL's scheme; validated on
the model, so the API and the admin refuse the same things."""

from __future__ import annotations

import pytest

from monitors.models import Monitor
from tests.factories import MonitorFactory

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"


@pytest.mark.parametrize("url, kind", [
    ("https://example.com/", "http"),
    ("http://example.com/", "http"),
    ("tcp://db.example.com:5432", "tcp"),
    ("dns:///example.com?type=MX", "dns"),
    ("dns://127.0.0.1:5353/example.com", "dns"),
    ("icmp://127.0.0.1", "icmp"),
])
def test_it_infers_the_kind_from_the_url_when_a_client_sends_none(api, url, kind) -> None:
    response = api.post(MONITORS, {"name": "m", "url": url}, format="json")

    # Clients from before kinds existed keep working, and see the kind.
    assert response.status_code == 201, response.data
    assert response.data["kind"] == kind
    assert Monitor.objects.get().kind == kind


def test_it_accepts_an_explicit_kind_that_fits_the_url(api) -> None:
    response = api.post(MONITORS, {"name": "m", "kind": "tcp", "url": "tcp://127.0.0.1:22"}, format="json")

    assert response.status_code == 201, response.data
    assert response.data["kind"] == "tcp"


@pytest.mark.parametrize("body, field", [
    ({"kind": "smtp", "url": "https://example.com/"}, "kind"),
    ({"kind": "tcp", "url": "https://example.com/"}, "url"),
    ({"kind": "http", "url": "icmp://127.0.0.1"}, "url"),
    ({"kind": "dns"}, "url"),
    ({"url": "dns:///example.com?type=BOGUS"}, "url"),
    ({"url": "dns://"}, "url"),
    ({"url": "dns:///example.com?type=A&colour=blue"}, "url"),
    ({"url": "dns://127.0.0.1:0/example.com"}, "url"),
    ({"url": "icmp://127.0.0.1:80"}, "url"),
    ({"url": "icmp://"}, "url"),
    ({"url": "icmp://127.0.0.1/path"}, "url"),
    ({"url": "https://example.com/", "schedule": "* * * * *"}, "schedule"),
])
def test_it_refuses_a_kind_or_url_that_does_not_fit_naming_the_field(api, body, field) -> None:
    response = api.post(MONITORS, {"name": "m", **body}, format="json")

    assert response.status_code == 400, response.data
    assert field in response.data, response.data
    assert not Monitor.objects.exists()


def test_a_new_url_of_another_scheme_takes_its_kind_along(api, user) -> None:
    monitor = MonitorFactory(owner=user, url="https://example.com/")

    response = api.patch(f"{MONITORS}{monitor.pk}/", {"url": "tcp://127.0.0.1:22"}, format="json")

    assert response.status_code == 200, response.data
    monitor.refresh_from_db()
    assert monitor.kind == "tcp"


def test_a_monitor_saved_without_a_kind_gets_it_from_its_url() -> None:
    monitor = MonitorFactory(url="tcp://127.0.0.1:5432")

    assert Monitor.objects.get(pk=monitor.pk).kind == "tcp"


def test_the_monitors_can_be_filtered_by_kind(api, user) -> None:
    MonitorFactory(owner=user, url="https://example.com/")
    tcp = MonitorFactory(owner=user, url="tcp://127.0.0.1:22")

    response = api.get(MONITORS, {"kind": "tcp"})

    assert [m["id"] for m in response.data["results"]] == [tcp.pk]
