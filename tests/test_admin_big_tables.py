"""The admin's changelists over tables of millions of rows: no COUNT(*) of
the table, an order an index serves, a sidebar that does not list every
monitor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loopr.admin import EstimatedCountPaginator, OwnedRelatedFieldListFilter, planned_rows
from monitors.models import CheckResult
from tests.factories import ChannelFactory, IncidentFactory, MonitorFactory, NotificationFactory, RegionFactory

pytestmark = pytest.mark.django_db

BIG_CHANGELISTS = [
    "/admin/monitors/checkresult/",
    "/admin/monitors/checkresult/?ok__exact=0",
    "/admin/monitors/checkresult/?monitor__id__exact={monitor}",
    "/admin/monitors/monitor/",
    "/admin/monitors/monitor/?status__exact=pending",
    "/admin/notifications/notification/",
    "/admin/monitors/incident/",
]


@pytest.fixture
def root() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "", "pw"))
    return client


@pytest.fixture
def rows(user):
    """Twelve rows in each big table (more than the exact count below is allowed to count)."""
    region = RegionFactory(name="eu-west")
    channel = ChannelFactory(owner=user)
    monitors = [MonitorFactory(owner=user) for _ in range(12)]
    now = timezone.now()
    CheckResult.objects.bulk_create(
        CheckResult(monitor=monitors[0], region=region, scheduled_at=now - timedelta(minutes=i),
                    checked_at=now - timedelta(minutes=i), ok=i % 2 == 0)
        for i in range(24)
    )
    for monitor in monitors:
        IncidentFactory(monitor=monitor)
        NotificationFactory(channel=channel, monitor=monitor)
    return monitors


def counts_in(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]


@pytest.mark.parametrize("path", BIG_CHANGELISTS)
def test_a_big_changelist_never_counts_a_whole_table(root, rows, path, monkeypatch):
    monkeypatch.setattr(EstimatedCountPaginator, "EXACT_UP_TO", 5)
    with CaptureQueriesContext(connection) as captured:
        response = root.get(path.format(monitor=rows[0].pk))
    assert response.status_code == 200
    # Every count stops after a few rows (a LIMITed subquery) ...
    counts = counts_in(captured)
    assert counts and all("LIMIT 6" in sql for sql in counts), counts
    # ... and past them the total is the planner's estimate, never below what was counted.
    changelist = response.context["cl"]
    if changelist.result_count > 5:
        assert any(q["sql"].startswith("EXPLAIN") for q in captured.captured_queries)
        assert changelist.result_count == max(6, planned_rows(changelist.queryset.order_by()))


def test_a_small_changelist_shows_its_exact_count(root, rows):
    response = root.get("/admin/monitors/checkresult/?ok__exact=1")
    # Under the exact limit: counted, not estimated.
    assert response.context["cl"].result_count == 12


def test_check_results_are_listed_newest_slot_first_and_offer_no_other_order(root, rows):
    with CaptureQueriesContext(connection) as captured:
        response = root.get("/admin/monitors/checkresult/")
    # Only the slot's column header sorts (the others would sort the whole table).
    assert response.content.decode().count('class="sortable') == 1
    page = list(response.context["cl"].result_list)
    assert [r.scheduled_at for r in page] == sorted((r.scheduled_at for r in page), reverse=True)
    listing = next(q["sql"] for q in captured.captured_queries
                   if q["sql"].startswith('SELECT "monitors_checkresult"."id"') and "ORDER BY" in q["sql"])
    assert 'ORDER BY "monitors_checkresult"."scheduled_at" DESC' in listing


def test_the_monitor_sidebar_lists_only_the_chosen_monitor_when_there_are_many(root, rows, monkeypatch):
    monkeypatch.setattr(OwnedRelatedFieldListFilter, "MAX_CHOICES", 3)
    names = [m.name for m in rows]
    unfiltered = root.get("/admin/monitors/checkresult/").content.decode()
    # Too many to list: no monitor in the sidebar (the rows name only the first monitor).
    assert not any(f"{name}</a></li>" in unfiltered for name in names)
    chosen = root.get(f"/admin/monitors/checkresult/?monitor__id__exact={rows[0].pk}")
    # Chosen: the filter applies and shows the one monitor, so that it can be cleared.
    assert chosen.context["cl"].result_count == 24
    assert f"{names[0]}</a></li>" in chosen.content.decode()
    assert root.get("/admin/monitors/checkresult/?monitor__id__exact=abc").status_code in (200, 302)


def test_the_silent_monitor_warning_names_five_and_counts_the_rest(user, rows):
    user.is_staff = user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    # Twelve monitors, none with a channel.
    page = client.get("/admin/monitors/monitor/").content.decode()
    assert "about 12 of your monitors" in page and "and 7 more" in page


def test_check_results_list_the_last_hour_unless_asked_for_more(root, user):
    region = RegionFactory(name="eu-west")
    monitor = MonitorFactory(owner=user)
    now = timezone.now()
    CheckResult.objects.bulk_create(
        CheckResult(monitor=monitor, region=region, scheduled_at=now - timedelta(minutes=minutes),
                    checked_at=now - timedelta(minutes=minutes), ok=True)
        for minutes in (5, 50, 70, 60 * 30)
    )
    shown = {path: root.get(path).context["cl"].result_count for path in (
        "/admin/monitors/checkresult/", "/admin/monitors/checkresult/?period=24h",
        "/admin/monitors/checkresult/?period=7d", "/admin/monitors/checkresult/?period=all",
        f"/admin/monitors/checkresult/?monitor__id__exact={monitor.pk}")}
    assert list(shown.values()) == [2, 3, 4, 4, 2]
    # The sidebar offers the periods, the default marked chosen.
    page = root.get("/admin/monitors/checkresult/").content.decode()
    assert "Last hour" in page and "?period=all" in page
