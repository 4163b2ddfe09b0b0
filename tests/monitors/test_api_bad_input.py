from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from django.utils import timezone as django_timezone

from monitors.models import CheckResult, Monitor
from tests.factories import MonitorFactory, RegionFactory
from workers.models import Region

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"
VALID = {"name": "site", "url": "https://example.com/", "interval": 60, "timeout": 5}
HUGE = 10**30


@pytest.mark.parametrize(
    "change, field",
    [
        # targets
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "http://"}, "url"),
        ({"url": "example.com"}, "url"),
        ({"url": "tcp://db.example"}, "url"),
        ({"url": "tcp://db.example:99999"}, "url"),
        ({"url": "tcp://127.0.0.1:0"}, "url"),
        ({"url": "tcp://db.example:65536"}, "url"),
        ({"url": "tcp://db.example:"}, "url"),
        ({"url": "tcp://db.example:pg"}, "url"),
        ({"url": "tcp://[::1]:0"}, "url"),
        ({"url": "http://example.com:0/"}, "url"),
        ({"url": "https://example.com:70000/"}, "url"),
        ({"url": "http://[::1/"}, "url"),
        ({"url": "http://exa mple.com/"}, "url"),
        ({"url": ["http://example.com/"]}, "url"),
        ({"url": None}, "url"),
        # schedule
        ({"interval": 0}, "interval"),
        ({"interval": 86401}, "interval"),
        ({"interval": HUGE}, "interval"),
        ({"interval": "often"}, "interval"),
        ({"interval": 1.5}, "interval"),
        ({"interval": None}, "interval"),
        ({"interval": [60]}, "interval"),
        ({"timeout": 60}, "timeout"),
        ({"timeout": 90}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": HUGE}, "timeout"),
        ({"timeout": "nan"}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": None}, "timeout"),
        ({"interval": 600, "timeout": 300}, "timeout"),  # above LOOPR_MAX_TIMEOUT
        ({"retries": -1}, "retries"),
        ({"retries": HUGE}, "retries"),
        ({"retries": "twice"}, "retries"),
        # request
        ({"method": "FETCH"}, "method"),
        ({"method": ["GET"]}, "method"),
        ({"headers": {"X-A": "1\r\nX-Injected: 1"}}, "headers"),
        ({"headers": {"X-A": "1\nX-Injected: 1"}}, "headers"),
        ({"headers": {"X-A\r\n": "1"}}, "headers"),
        ({"headers": {"X-A": 1}}, "headers"),
        ({"headers": {"X-A": None}}, "headers"),
        ({"headers": {"X-A": ["1"]}}, "headers"),
        ({"headers": ["X-A: 1"]}, "headers"),
        ({"headers": "X-A: 1"}, "headers"),
        ({"headers": None}, "headers"),
        ({"headers": {"X-A": "\x00"}}, "headers"),
        # Headers the probe could never send, so every check would fail.
        ({"headers": {"X-Price": "5 \u20ac"}}, "headers"),
        ({"headers": {"X-\u00c4": "1"}}, "headers"),
        ({"headers": {"X(A)": "1"}}, "headers"),
        ({"headers": {"": "1"}}, "headers"),
        ({"headers": {"X-A": " leading"}}, "headers"),
        ({"headers": {"X-A": "a\x01b"}}, "headers"),
        ({"body": {"a": 1}}, "body"),
        ({"body": "\x00"}, "body"),
        ({"expected_status": "abc"}, "expected_status"),
        ({"expected_status": "600"}, "expected_status"),
        ({"expected_status": "299-200"}, "expected_status"),
        ({"expected_status": "2xx,"}, "expected_status"),
        ({"expected_status": ""}, "expected_status"),
        ({"expected_status": ["200"]}, "expected_status"),
        ({"keyword": ["ok"]}, "keyword"),
        ({"follow_redirects": "sometimes"}, "follow_redirects"),
        ({"follow_redirects": None}, "follow_redirects"),
        # where and what
        ({"regions": ["atlantis"]}, "regions"),
        ({"regions": "local"}, "regions"),
        ({"regions": [{"name": "local"}]}, "regions"),
        ({"regions": None}, "regions"),
        ({"regions": ["\x00"]}, "regions"),
        ({"name": "x" * 201}, "name"),
        ({"name": ""}, "name"),
        ({"name": ["site"]}, "name"),
        ({"name": None}, "name"),
        ({"paused": "maybe"}, "paused"),
    ],
    ids=repr,
)
def test_a_bad_monitor_is_a_400_naming_the_field(api, change, field):
    RegionFactory(name="local")
    response = api.post(MONITORS, {**VALID, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Monitor.objects.exists()


@pytest.mark.parametrize("url", ["tcp://db.example:1", "tcp://db.example:65535", "tcp://[::1]:5432",
                                 "http://example.com:8080/", "https://example.com:443/health"])
def test_every_port_from_1_to_65535_is_a_valid_target(api, url):
    response = api.post(MONITORS, {**VALID, "url": url}, format="json")
    assert response.status_code == 201, response.content


def test_a_bad_port_is_named_in_the_error(api):
    response = api.post(MONITORS, {**VALID, "url": "tcp://127.0.0.1:0"}, format="json")
    assert response.json()["url"] == ["Invalid port '0': the port must be a number from 1 to 65535."]


@pytest.mark.parametrize("field", ["name", "url"])
def test_a_monitor_without_a_required_field_is_a_400_naming_it(api, field):
    payload = {k: v for k, v in VALID.items() if k != field}
    response = api.post(MONITORS, payload, format="json")
    assert response.status_code == 400 and field in response.json()


def test_an_interval_below_the_configured_minimum_is_refused(api, settings):
    settings.LOOPR_MIN_INTERVAL = 30
    response = api.post(MONITORS, {**VALID, "interval": 29, "timeout": 5}, format="json")
    assert response.status_code == 400 and "interval" in response.json()
    # The minimum itself is fine.
    assert api.post(MONITORS, {**VALID, "interval": 30}, format="json").status_code == 201


@pytest.mark.parametrize(
    "change, field",
    [
        # Only the timeout changes, yet it now reaches the stored interval.
        ({"timeout": 60}, "timeout"),
        # Only the interval changes, yet the stored timeout no longer fits.
        ({"interval": 5}, "timeout"),
        ({"interval": "abc"}, "interval"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"headers": {"X-A": "a\r\nb"}}, "headers"),
        ({"regions": ["atlantis"]}, "regions"),
        ({"expected_status": "999"}, "expected_status"),
    ],
    ids=repr,
)
def test_a_bad_update_is_a_400_naming_the_field_and_changes_nothing(api, user, change, field):
    monitor = MonitorFactory(owner=user, interval=60, timeout=10)
    response = api.patch(f"{MONITORS}{monitor.pk}/", change, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    monitor.refresh_from_db()
    assert (monitor.interval, monitor.timeout, monitor.url) == (60, 10, "http://127.0.0.1:9/")


def test_malformed_json_is_a_400(api):
    response = api.post(MONITORS, '{"name": "site", "url": ', content_type="application/json")
    assert response.status_code == 400 and "detail" in response.json()


def test_deeply_nested_json_is_a_400_not_a_crash(api):
    response = api.post(MONITORS, "[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert response.status_code == 400


# --- never a 500 ------------------------------------------------------------------

WEIRD_VALUES = [None, "", "abc", "\x00", "x" * 5000, ["a"], {"a": "b"}, True, -1, 1.5, -HUGE]
FIELDS = [
    "name", "url", "interval", "timeout", "method", "headers", "body", "expected_status", "keyword",
    "follow_redirects", "regions", "retries", "paused",
]


def test_no_value_of_any_field_makes_the_api_fail_with_a_500(api, user):
    RegionFactory(name="local")
    monitor = MonitorFactory(owner=user)
    failures = []
    for field in FIELDS:
        for value in WEIRD_VALUES:
            for method, url in [("post", MONITORS), ("patch", f"{MONITORS}{monitor.pk}/")]:
                response = getattr(api, method)(url, {**VALID, field: value}, format="json")
                if response.status_code >= 500:
                    failures.append((method, field, value, response.status_code))
    assert failures == []


def test_no_form_field_makes_the_api_fail_with_a_500(api):
    RegionFactory(name="local")
    form_values = ["", "abc", "\x00", "[" * 100_000, "null", "[]", "1e999", str(HUGE)]
    failures = []
    for field in FIELDS:
        for value in form_values:
            response = api.post(MONITORS, {**VALID, field: value}, format="multipart")
            if response.status_code >= 500:
                failures.append((field, value[:20], response.status_code))
    assert failures == []


@pytest.mark.parametrize(
    "path",
    [
        "monitors/abc/",
        "monitors/-1/",
        "monitors/1.5/",
        f"monitors/{HUGE}/",
        f"monitors/{HUGE}/results/",
        "monitors/abc/results/",
        "monitors/{id}/results/?cursor=garbage",
        "monitors/{id}/results/?cursor=cD0yMDI0LTAxLTAx",  # a well-formed cursor of a bad position
        "monitors/{id}/results/?cursor=bz0tMSZwPW5vdGFkYXRl",  # o=-1&p=notadate
        "monitors/{id}/results/?page_size=abc",
        "monitors/{id}/results/?page_size=-5",
        "monitors/{id}/results/?page_size=0",
        f"monitors/{{id}}/results/?page_size={HUGE}",
        "monitors/{id}/results/?since=notadate",
        "monitors/{id}/results/?until=2024-13-45T99:00:00Z",
        "monitors/{id}/results/?since=0001-01-01T00:00:00%2B05:00",
        "monitors/{id}/results/?until=9999-12-31T23:59:59-05:00",
        "monitors/{id}/results/?ok=maybe",
        "monitors/{id}/results/?error_kind=bogus",
        "monitors/{id}/results/?region=%00",
        "monitors/?status=bogus",
        "monitors/?paused=maybe",
        "monitors/?name=%00",
        "monitors/?page=abc",
        "monitors/?page=99999",
        "regions/nowhere/",
        "regions/%00/",
    ],
)
def test_no_url_makes_the_api_fail_with_a_500(api, user, path):
    monitor = MonitorFactory(owner=user)
    response = api.get("/api/v1/" + path.replace("{id}", str(monitor.pk)))
    assert response.status_code < 500
    assert response.status_code in (200, 400, 404)


@pytest.mark.parametrize(
    "query, field",
    [
        ("since=notadate", "since"),
        ("until=2024-02-30T00:00:00Z", "until"),
        ("since=0001-01-01T00:00:00%2B05:00", "since"),
        ("error_kind=bogus", "error_kind"),
    ],
)
def test_a_bad_results_filter_is_a_400_naming_it(api, user, query, field):
    monitor = MonitorFactory(owner=user)
    response = api.get(f"{MONITORS}{monitor.pk}/results/?{query}")
    assert response.status_code == 400 and field in response.json()


@pytest.mark.parametrize("path", ["monitors/abc/", f"monitors/{HUGE}/"])
@pytest.mark.parametrize("method", ["patch", "put", "delete"])
def test_writing_to_a_malformed_id_is_a_404(api, method, path):
    response = getattr(api, method)("/api/v1/" + path, VALID, format="json")
    assert response.status_code == 404


@pytest.mark.parametrize("path", [
    "monitors/{id}/results/?since=2026-01-05T12:00:00-20:00",
    "monitors/{id}/results/?until=2026-01-05T12:00:00%2B16:00",
    "incidents/?since=2026-01-05T12:00:00-20:00",
    "incidents/?until=2026-01-05T12:00:00%2B16:00",
])
def test_an_offset_beyond_postgresqls_is_read_in_utc_not_a_500(api, user, path):
    monitor = MonitorFactory(owner=user)
    assert api.get("/api/v1/" + path.replace("{id}", str(monitor.pk))).status_code == 200


@pytest.mark.parametrize("path, field", [
    ("monitors/?paused=1134", "paused"),
    ("monitors/?paused=maybe", "paused"),
    ("monitors/{id}/results/?ok=2", "ok"),
    ("incidents/?open=sometimes", "open"),
    ("channels/?enabled=x", "enabled"),
    ("channels/?is_default=7", "is_default"),
    ("status-pages/?public=-58800", "public"),
])
def test_a_boolean_filter_with_junk_is_a_400_naming_it(api, user, path, field):
    monitor = MonitorFactory(owner=user)
    response = api.get("/api/v1/" + path.replace("{id}", str(monitor.pk)))
    assert response.status_code == 400 and field in response.json()


@pytest.mark.parametrize("path, field", [
    ("monitors/?name=a%00b", "name"),
    ("monitors/{id}/results/?region=a%00", "region"),
    ("monitors/{id}/uptime/?region=%00", "region"),
    ("audit-log/?actor=%00", "actor"),
])
def test_a_nul_in_a_text_parameter_is_a_400_naming_it_as_the_schema_says(api, user, path, field):
    monitor = MonitorFactory(owner=user)
    response = api.get("/api/v1/" + path.replace("{id}", str(monitor.pk)))
    assert response.status_code == 400 and field in response.json()


def test_a_boolean_filter_takes_true_false_1_and_0(api, user):
    MonitorFactory(owner=user, paused=True)
    MonitorFactory(owner=user, paused=False)
    for value, expected in (("true", True), ("1", True), ("false", False), ("0", False)):
        listed = api.get(f"/api/v1/monitors/?paused={value}").json()["results"]
        assert [m["paused"] for m in listed] == [expected], value


@pytest.mark.parametrize("path", [
    "monitors/{id}/uptime/?since=2026-01-05T12:00:00-20:00",
    "monitors/{id}/uptime/?since=2026-01-05T12:00:00-20:00&until=2026-01-07T15:00:00%2B16:00",
    "monitors/{id}/series/?since=2026-01-05T12:00:00-20:00",
    "monitors/{id}/series/?since=2026-01-05T12:00:00-20:00&until=2026-01-07T15:00:00%2B16:00",
])
def test_uptime_and_series_read_offsets_beyond_postgresqls_in_utc(api, user, path):
    monitor = MonitorFactory(owner=user)
    with time_machine.travel(datetime(2026, 1, 7, tzinfo=timezone.utc), tick=False):
        response = api.get("/api/v1/" + path.replace("{id}", str(monitor.pk)))
    assert response.status_code == 200, response.json()
    assert datetime.fromisoformat(response.json()["since"]) <= datetime(2026, 1, 6, 8, tzinfo=timezone.utc)


@pytest.mark.parametrize("path", ["monitors/{id}/uptime/", "monitors/{id}/series/", "monitors/{id}/results/",
                                  "incidents/"])
@pytest.mark.parametrize("since", ["0001-01-01T00:00:00%2B05:00", "yesterday", "2026-13-01T00:00:00Z",
                                   "9999-12-31T23:59:59-05:00"])
def test_a_datetime_with_no_utc_equivalent_or_no_date_is_a_400_naming_it(api, user, path, since):
    monitor = MonitorFactory(owner=user)
    response = api.get("/api/v1/" + path.replace("{id}", str(monitor.pk)) + f"?since={since}")
    assert response.status_code == 400 and "since" in response.json()


def test_a_time_without_an_offset_is_utc_whatever_the_time_zone_setting(api, user, settings):
    settings.TIME_ZONE = "Asia/Kolkata"  # UTC+05:30: read there, the filter would reach 5.5 hours further back
    monitor = MonitorFactory(owner=user)
    region = Region.objects.get_or_create(name="local")[0]
    now = django_timezone.now().replace(microsecond=0)
    for hours in (0, 3):
        at = now - timedelta(hours=hours)
        CheckResult.objects.create(monitor=monitor, region=region, scheduled_at=at, checked_at=at, ok=True)
    naive = (now - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    results = api.get(f"{MONITORS}{monitor.pk}/results/?since={naive}").json()["results"]
    assert [datetime.fromisoformat(r["scheduled_at"]) for r in results] == [now]
    uptime = api.get(f"{MONITORS}{monitor.pk}/uptime/?since={naive}").json()
    assert datetime.fromisoformat(uptime["since"]) == now - timedelta(hours=1)


@pytest.mark.parametrize("change, field", [
    ({"name": 0}, "name"),
    ({"name": ["site"]}, "name"),
    ({"interval": "60"}, "interval"),
    ({"interval": True}, "interval"),
    ({"timeout": "5"}, "timeout"),
    ({"paused": 1}, "paused"),
    ({"paused": "yes"}, "paused"),
    ({"expected_status": 200}, "expected_status"),
    ({"regions": "local"}, "regions"),
])
def test_a_json_value_of_the_wrong_type_is_a_400_naming_it_not_coerced(api, change, field):
    response = api.post(MONITORS, {**VALID, **change}, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()


def test_a_form_still_sends_numbers_and_booleans_as_text(api):
    response = api.post(MONITORS, {**VALID, "interval": "60", "paused": "true"})  # multipart
    assert response.status_code == 201, response.json()
