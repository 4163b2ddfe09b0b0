"""Heartbeat (push / cron) monitors: created through the API, pinged at
/ping/<uuid> in Healthchecks' grammar, and late when no success arrives
within the schedule and its grace — through the same state machine,
incidents and alerts as a probed monitor."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
import time_machine
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.utils import timezone

from monitors.heartbeats import prune_pings, sweep_late_heartbeats
from monitors.models import CheckResult, Incident, Monitor, Ping
from notifications.models import Notification
from tests.factories import ChannelFactory

pytestmark = pytest.mark.django_db
# A steady ping's one statement is PostgreSQL's (a data-modifying WITH); on
# SQLite every ping takes the state machine's path.
ONE_STATEMENT = pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")

MONITORS = "/api/v1/monitors/"


class WsgiClient:
    """Requests through the web's own WSGI callable (loopr/wsgi.py), which
    serves a ping without Django's handler: what gunicorn runs. Answers as
    the test client's do (status_code, content, headers by name)."""

    def __init__(self) -> None:
        self.factory = RequestFactory()

    def __getattr__(self, method: str):
        def send(path: str, data=b"", content_type: str = "application/octet-stream", **extra):
            from loopr.wsgi import application

            request = getattr(self.factory, method)(path, **({"data": data, "content_type": content_type}
                                                              if method in ("post", "put") else {}), **extra)
            answered = {}
            # As Django's test client does: the request signals must not close the test's transaction.
            request_started.disconnect(close_old_connections)
            request_finished.disconnect(close_old_connections)
            try:
                content = b"".join(application(request.environ, lambda status, headers: answered.update(
                    status=status, headers=headers)))
            finally:
                request_started.connect(close_old_connections)
                request_finished.connect(close_old_connections)
            response = HttpResponse(content, status=int(answered["status"].split()[0]))
            for name, value in answered["headers"]:
                response[name] = value
            return response
        return send


@pytest.fixture(params=["django", "wsgi"])
def web(request) -> Client | WsgiClient:
    """Each ping test through Django's handler (the test client) and through
    the web's WSGI callable, which must answer alike."""
    return Client() if request.param == "django" else WsgiClient()


def create(api, **fields) -> dict:
    response = api.post(MONITORS, {"name": "nightly backup", "kind": "heartbeat", **fields}, format="json")
    assert response.status_code == 201, response.data
    return response.data


def heartbeat(api, **fields) -> Monitor:
    monitor = Monitor.objects.get(pk=create(api, **fields)["id"])
    monitor.channels.set([ChannelFactory(owner=monitor.owner)])
    return monitor


def ping(web: Client, monitor: Monitor, suffix: str = "", method: str = "get", **kwargs):
    return getattr(web, method)(f"/ping/{monitor.ping_uuid}{suffix}", **kwargs)


# --- creation --------------------------------------------------------------


def test_a_heartbeat_shows_its_absolute_ping_url_and_waits_for_its_first_ping(api) -> None:
    data = create(api, interval=3600, grace=600)

    monitor = Monitor.objects.get()
    assert data["kind"] == "heartbeat" and data["url"] == ""
    assert data["ping_url"] == f"http://testserver/ping/{monitor.ping_uuid}"
    assert data["status"] == "pending" and data["next_ping_due_at"] is None
    # Its uuid is the secret: version 4, 122 random bits.
    assert monitor.ping_uuid.version == 4


def test_the_ping_url_starts_with_loopr_public_url_when_set(api, settings) -> None:
    settings.LOOPR_PUBLIC_URL = "https://loopr.example.com/base"

    data = create(api, interval=60)

    assert data["ping_url"] == f"https://loopr.example.com/base/ping/{Monitor.objects.get().ping_uuid}"


def test_a_cron_heartbeat_is_created_with_its_schedule_and_time_zone(api) -> None:
    data = create(api, schedule="0 3 * * *", timezone="Europe/Berlin", grace=1800)

    assert (data["schedule"], data["timezone"], data["grace"]) == ("0 3 * * *", "Europe/Berlin", 1800)


@pytest.mark.parametrize("fields, field", [
    ({"url": "https://example.com/", "interval": 60}, "url"),
    ({}, "interval"),
    ({"schedule": "61 * * * *"}, "schedule"),
    ({"schedule": "every day"}, "schedule"),
    ({"schedule": "0 3 * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"interval": 0}, "interval"),
    ({"interval": 60, "grace": -5}, "grace"),
    ({"interval": 60, "grace": 86401}, "grace"),
    ({"interval": 60, "assertions": [{"source": "latency", "op": "lt", "value": 5}]}, "assertions"),
])
def test_a_bad_heartbeat_is_a_400_naming_the_field(api, fields, field) -> None:
    response = api.post(MONITORS, {"name": "hb", "kind": "heartbeat", **fields}, format="json")

    assert response.status_code == 400, response.data
    assert field in response.data, response.data
    assert not Monitor.objects.exists()


# --- pings -----------------------------------------------------------------


def test_a_ping_is_recorded_as_a_result_and_brings_the_heartbeat_up(api, web) -> None:
    monitor = heartbeat(api, interval=3600, grace=600)

    response = ping(web, monitor)

    assert response.status_code == 200
    assert response.content == b"OK\n" and response["Content-Type"].startswith("text/plain")
    monitor.refresh_from_db()
    assert monitor.status == "up"
    result = CheckResult.objects.get(monitor=monitor)
    assert (result.ok, result.error_kind, result.region.name) == (True, "ok", "push")
    # The next deadline: one interval and the grace after the ping.
    assert monitor.next_ping_due_at == result.checked_at + timedelta(seconds=4200)
    listed = api.get(f"{MONITORS}{monitor.pk}/results/").data["results"]
    assert [r["error_kind"] for r in listed] == ["ok"]


@pytest.mark.parametrize("method", ["get", "post", "head"])
def test_get_post_and_head_all_ping(api, web, method) -> None:
    monitor = heartbeat(api, interval=60)

    assert ping(web, monitor, method=method).status_code == 200
    assert Ping.objects.get().method == method.upper()


def test_fail_and_a_non_zero_exit_status_bring_it_down_with_one_alert(api, web) -> None:
    monitor = heartbeat(api, interval=60)
    ping(web, monitor)

    ping(web, monitor, "/fail")
    monitor.refresh_from_db()
    assert monitor.status == "down"
    assert Incident.objects.get(monitor=monitor).cause == "the job reported a failure (/fail)"

    ping(web, monitor, "/0")
    ping(web, monitor, "/3")
    monitor.refresh_from_db()
    incidents = Incident.objects.filter(monitor=monitor).order_by("started_at")
    assert monitor.status == "down"
    assert [i.cause for i in incidents] == ["the job reported a failure (/fail)", "the job exited with status 3"]
    events = list(Notification.objects.filter(monitor=monitor).order_by("created_at").values_list("event", flat=True))
    assert events == ["down", "up", "down"]


def test_start_then_success_measures_the_run_and_rid_pairs_overlapping_runs(api, web) -> None:
    monitor = heartbeat(api, interval=60)
    first, second = uuid.uuid4(), uuid.uuid4()

    ping(web, monitor, f"/start?rid={first}")
    ping(web, monitor, f"/start?rid={second}")
    ping(web, monitor, f"?rid={first}")

    done = Ping.objects.get(kind="success")
    assert done.rid == first and done.duration_ms is not None and done.duration_ms >= 0
    assert CheckResult.objects.get(monitor=monitor).latency_ms == done.duration_ms
    monitor.refresh_from_db()
    assert list(monitor.run_starts) == [str(second)]


def test_a_log_ping_is_kept_with_its_body_and_changes_nothing(api, web) -> None:
    monitor = heartbeat(api, interval=60)

    response = ping(web, monitor, "/log", method="post", data=b"disk 91% full", content_type="text/plain")

    assert response.status_code == 200
    monitor.refresh_from_db()
    assert monitor.status == "pending" and not CheckResult.objects.exists()
    shown = api.get(f"{MONITORS}{monitor.pk}/pings/").data["results"]
    assert [(p["kind"], p["body"]) for p in shown] == [("log", "disk 91% full")]


def test_a_long_body_is_cut_at_10_kb_not_refused(api, web) -> None:
    monitor = heartbeat(api, interval=60)

    response = ping(web, monitor, method="post", data=b"x" * 50_000, content_type="text/plain")

    assert response.status_code == 200
    assert len(Ping.objects.get().body) == 10_000


@pytest.mark.parametrize("suffix, method, kwargs, status", [
    ("/999", "get", {}, 400),
    ("/256", "get", {}, 400),
    ("/-1", "get", {}, 400),
    ("/reboot", "get", {}, 400),
    ("?rid=not-a-uuid", "get", {}, 400),
    ("", "put", {}, 405),
    ("", "delete", {}, 405),
    ("", "post", {"data": b"x" * 1_000_001, "content_type": "text/plain"}, 413),
])
def test_a_malformed_ping_is_a_clear_4xx_and_changes_nothing(api, web, suffix, method, kwargs, status) -> None:
    monitor = heartbeat(api, interval=60)

    response = ping(web, monitor, suffix, method=method, **kwargs)

    assert response.status_code == status
    assert response.content.strip()  # it says what is wrong
    monitor.refresh_from_db()
    assert monitor.status == "pending"
    assert not Ping.objects.exists() and not CheckResult.objects.exists()


def test_an_unknown_uuid_is_a_404_and_another_kind_has_no_ping_url(api, web) -> None:
    checked = Monitor.objects.get(pk=api.post(MONITORS, {"name": "site", "url": "https://example.com/"},
                                              format="json").data["id"])

    assert web.get(f"/ping/{uuid.uuid4()}").status_code == 404
    assert web.get(f"/ping/{checked.ping_uuid}").status_code == 404
    assert web.get("/ping/not-a-uuid").status_code == 404
    assert api.get(f"{MONITORS}{checked.pk}/").data["ping_url"] is None


def test_pings_beyond_the_rate_are_429(api, web, settings) -> None:
    settings.LOOPR_PING_RATE = 3
    monitor = heartbeat(api, interval=60)

    statuses = [ping(web, monitor).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    assert Ping.objects.count() == 3


def test_pings_need_no_login_and_no_csrf_token(api) -> None:
    monitor = heartbeat(api, interval=60)
    strict = Client(enforce_csrf_checks=True)

    assert strict.post(f"/ping/{monitor.ping_uuid}", data=b"", content_type="text/plain").status_code == 200


# --- lateness --------------------------------------------------------------


def test_a_late_heartbeat_goes_down_once_with_one_alert_and_a_ping_brings_it_back(api, web) -> None:
    monitor = heartbeat(api, interval=60, grace=30)
    ping(web, monitor)
    monitor.refresh_from_db()
    due = monitor.next_ping_due_at

    assert sweep_late_heartbeats(now=due - timedelta(seconds=1)) == 0
    assert sweep_late_heartbeats(now=due + timedelta(seconds=1)) == 1
    assert sweep_late_heartbeats(now=due + timedelta(seconds=2)) == 0  # its next deadline is a period later

    monitor.refresh_from_db()
    assert monitor.status == "down"
    late = CheckResult.objects.get(monitor=monitor, ok=False)
    assert (late.error_kind, late.scheduled_at) == ("late", due)
    assert late.error.startswith(f"no ping by {due.isoformat(timespec='seconds')} (expected every 60 s, 30 s grace)")
    assert monitor.next_ping_due_at == due + timedelta(seconds=60)
    assert list(Notification.objects.filter(monitor=monitor).values_list("event", flat=True)) == ["down"]

    ping(web, monitor)
    monitor.refresh_from_db()
    assert monitor.status == "up"
    # (Sorted: the sweep ran in the simulated future, the ping now.)
    assert sorted(Notification.objects.filter(monitor=monitor).values_list("event", flat=True)) == ["down", "up"]


def test_after_a_long_pause_of_the_sweep_one_late_result_is_recorded_not_one_per_period(api, web) -> None:
    monitor = heartbeat(api, interval=60, grace=0)
    ping(web, monitor)
    monitor.refresh_from_db()
    due = monitor.next_ping_due_at
    now = due + timedelta(hours=1)

    sweep_late_heartbeats(now=now)

    monitor.refresh_from_db()
    assert CheckResult.objects.filter(monitor=monitor, error_kind="late").count() == 1
    assert now < monitor.next_ping_due_at <= now + timedelta(seconds=60)


def test_a_paused_heartbeat_is_never_late(api, web) -> None:
    monitor = heartbeat(api, interval=60, grace=0)
    ping(web, monitor)
    api.patch(f"{MONITORS}{monitor.pk}/", {"paused": True}, format="json")

    assert sweep_late_heartbeats(now=timezone.now() + timedelta(days=1)) == 0


def test_a_run_that_started_and_did_not_end_within_the_grace_is_late(api, web) -> None:
    monitor = heartbeat(api, interval=86400, grace=60)
    ping(web, monitor)
    ping(web, monitor, "/start")
    monitor.refresh_from_db()

    started = Ping.objects.get(kind="start").at
    assert monitor.next_ping_due_at == started + timedelta(seconds=60)


def test_a_cron_heartbeat_is_due_at_its_next_local_time_across_a_dst_change(api, web) -> None:
    # 02:30 every night in Berlin. On 2026-03-29 clocks jump from 02:00 to
    # 03:00: that night's run is expected at 03:00 CEST (01:00 UTC), and the
    # next at 02:30 CEST (00:30 UTC), not 24 hours after the last.
    monitor = heartbeat(api, schedule="30 2 * * *", timezone="Europe/Berlin", grace=600)
    with time_machine.travel(datetime(2026, 3, 28, 1, 31, tzinfo=dt_timezone.utc), tick=False):
        ping(web, monitor)  # 02:31 CET on the 28th
    monitor.refresh_from_db()
    assert monitor.next_ping_due_at == datetime(2026, 3, 29, 1, 10, tzinfo=dt_timezone.utc)

    with time_machine.travel(datetime(2026, 3, 29, 1, 5, tzinfo=dt_timezone.utc), tick=False):
        ping(web, monitor)  # 03:05 CEST on the 29th
    monitor.refresh_from_db()
    assert monitor.next_ping_due_at == datetime(2026, 3, 30, 0, 40, tzinfo=dt_timezone.utc)


@ONE_STATEMENT
def test_a_success_of_a_heartbeat_that_is_up_is_one_statement_with_the_state_machines_effects(
        api, web, django_assert_num_queries) -> None:
    monitor = heartbeat(api, interval=60, grace=30)
    ping(web, monitor)  # pending -> up: a state change, the state machine's path

    # No state changes: the ping, its result and the monitor's counters and
    # deadline in one statement (the rate limit is in Redis).
    with django_assert_num_queries(1):
        assert ping(web, monitor, "/0").status_code == 200

    monitor.refresh_from_db()
    results = list(CheckResult.objects.filter(monitor=monitor).order_by("scheduled_at"))
    assert [(r.ok, r.error_kind, r.region.name) for r in results] == [(True, "ok", "push")] * 2
    last = results[-1]
    assert monitor.last_slot_at == monitor.last_checked_at == last.scheduled_at == last.checked_at
    assert monitor.next_ping_due_at == last.checked_at + timedelta(seconds=90)
    assert (monitor.status, monitor.consecutive_successes, monitor.consecutive_failures) == ("up", 2, 0)
    assert Ping.objects.filter(monitor=monitor, kind="exit", exit_status=0, at=last.scheduled_at).exists()
    # A failure still goes through the state machine.
    ping(web, monitor, "/fail")
    monitor.refresh_from_db()
    assert monitor.status == "down" and Incident.objects.filter(monitor=monitor).count() == 1


def test_a_cron_heartbeat_that_is_up_keeps_to_its_schedule_when_the_schedule_changes_between_pings(
        api, web) -> None:
    monitor = heartbeat(api, schedule="0 * * * *", grace=60)
    ping(web, monitor)
    ping(web, monitor)  # one statement, with the deadline of the schedule the first ping showed

    last = CheckResult.objects.filter(monitor=monitor).latest("scheduled_at").checked_at
    monitor.refresh_from_db()
    hour = last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert monitor.next_ping_due_at == hour + timedelta(seconds=60)

    # Every five minutes now: the next ping's deadline follows the new schedule.
    assert api.patch(f"{MONITORS}{monitor.pk}/", {"schedule": "*/5 * * * *"}, format="json").status_code == 200
    ping(web, monitor)

    last = CheckResult.objects.filter(monitor=monitor).latest("scheduled_at").checked_at
    monitor.refresh_from_db()
    five = last.replace(second=0, microsecond=0)
    five += timedelta(minutes=5 - five.minute % 5)
    assert monitor.next_ping_due_at == five + timedelta(seconds=60)


@ONE_STATEMENT
@pytest.mark.django_db(transaction=True)
def test_a_steady_ping_on_a_connection_that_died_while_idle_is_recorded_on_a_new_one(web) -> None:
    import psycopg

    from tests.factories import UserFactory

    monitor = Monitor.objects.create(owner=UserFactory(), name="backup", kind="heartbeat", url="", interval=60)
    assert ping(web, monitor).status_code == 200  # up: the next success is one statement
    # The server ends the web's idle connection (a restart, an idle timeout).
    settings = connection.settings_dict
    with psycopg.connect(host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
                         password=settings["PASSWORD"], dbname=settings["NAME"], autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])

    assert ping(web, monitor).status_code == 200

    assert Ping.objects.filter(monitor=monitor).count() == 2
    assert CheckResult.objects.filter(monitor=monitor, ok=True).count() == 2


def test_a_ping_served_by_the_wsgi_app_skips_the_sites_middleware_and_keeps_its_security_headers(api) -> None:
    from io import BytesIO

    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections, connection

    from loopr.wsgi import application

    monitor = heartbeat(api, interval=60)
    answered = {}
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/ping/{monitor.ping_uuid}", "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "wsgi.url_scheme": "http",
               "wsgi.input": BytesIO(), "REMOTE_ADDR": "127.0.0.1"}
    # As Django's test client does: the request signals must not close the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        body = b"".join(application(environ, lambda status, headers: answered.update(status=status,
                                                                                    headers=dict(headers))))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)

    assert (answered["status"], body) == ("200 OK", b"OK\n")
    headers = answered["headers"]
    # Answered with a length (no chunking), by SecurityMiddleware alone: no
    # session cookie, no CSP, no X-Frame-Options of the site's stack.
    assert headers["Content-Length"] == "3" and headers["X-Content-Type-Options"] == "nosniff"
    assert not {"Set-Cookie", "Vary", "Content-Security-Policy", "X-Frame-Options"} & set(headers), headers
    assert Ping.objects.filter(monitor=monitor).count() == 1


def test_pings_past_retention_are_pruned(api, web, settings) -> None:
    monitor = heartbeat(api, interval=60)
    ping(web, monitor, "/log")
    ping(web, monitor, "/log")
    Ping.objects.filter(pk=Ping.objects.order_by("at").first().pk).update(
        at=timezone.now() - timedelta(days=settings.LOOPR_RESULTS_RETENTION_DAYS, minutes=1))

    assert prune_pings() == (1, False)
    assert Ping.objects.count() == 1


def test_a_new_grace_moves_the_deadline_from_the_last_success(api, web) -> None:
    monitor = heartbeat(api, interval=60, grace=30)
    ping(web, monitor)
    last = CheckResult.objects.get(monitor=monitor).checked_at

    api.patch(f"{MONITORS}{monitor.pk}/", {"grace": 600}, format="json")

    monitor.refresh_from_db()
    assert monitor.next_ping_due_at == last + timedelta(seconds=660)


def test_a_steady_ping_counts_in_its_monitors_checks_total_like_any_other_result(
        web, django_capture_on_commit_callbacks) -> None:
    import redis
    from django.conf import settings

    from loopr import tallies
    from tests.factories import UserFactory

    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.delete(tallies.CHECKS)
    monitor = Monitor.objects.create(owner=UserFactory(), name="backup", kind="heartbeat", url="", interval=60)
    for _ in range(3):  # the first through the state machine, then steady ones in one statement each
        with django_capture_on_commit_callbacks(execute=True):
            assert ping(web, monitor).status_code == 200

    assert CheckResult.objects.filter(monitor=monitor, ok=True).count() == 3
    assert int(broker.hget(tallies.CHECKS, f"{monitor.pk}:ok") or 0) == 3

    # A success the rate limit's script counted that then takes the state
    # machine's path (a run is open) is counted once, not again on commit.
    for suffix in ("/start", ""):
        with django_capture_on_commit_callbacks(execute=True):
            assert ping(web, monitor, suffix).status_code == 200
    assert CheckResult.objects.filter(monitor=monitor, ok=True).count() == 4
    assert int(broker.hget(tallies.CHECKS, f"{monitor.pk}:ok") or 0) == 4


@ONE_STATEMENT
@pytest.mark.django_db(transaction=True)
def test_a_steady_ping_is_planned_once_per_database_connection(web) -> None:
    from tests.factories import UserFactory

    monitor = Monitor.objects.create(owner=UserFactory(), name="backup", kind="heartbeat", url="", interval=60)
    for _ in range(8):  # the first through the state machine, then steady ones
        assert ping(web, monitor).status_code == 200

    # The statement is prepared on the connection and the seven steady pings
    # executed it there, each without parsing it again (the first ping's
    # attempt, before its schedule was known, has parameters of other types:
    # a statement of its own).
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(generic_plans + custom_plans) FROM pg_prepared_statements")
        assert cursor.fetchall() == [(7,)]
