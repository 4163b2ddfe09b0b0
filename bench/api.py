"""The API and the admin at scale: a PostgreSQL database seeded with many
monitors and millions of results, then the latency of the pages people and
scripts read, through the real web process (gunicorn, as in the Procfile),
and the time to create monitors through the API.

    python bench/api.py                                  # 100k monitors, 10 M results (minutes, ~3 GB)
    python bench/api.py --monitors 2000 --results 200000 --create 500
    python bench/api.py --skip-seed                      # measure again on the seeded database

It needs PostgreSQL (DATABASE_URL names the server; the database is
`--database`, default `loopr_api_bench`, dropped and created by the seed).
Not a test: it prints a Markdown table (with the machine's load) to paste
into BENCHMARKS.md.

The seed is SQL (INSERT … SELECT over generate_series), written from the
models' own table and column names and defaults, so it follows the models
when their tables change: results are time-ordered over 30 days, from
several regions, ~2 % failed, as ingest would have stored them; the busiest
monitors carry a full month of results each (a check every 15 minutes from
each of three regions), the others none.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REGIONS = ["eu-west", "us-east", "ap-south", "sa-east"]
RESULT_REGIONS = REGIONS[:3]  # each busy monitor is checked from three
DAYS = 30
SLOT_SECONDS = 900  # a busy monitor's check interval in the seed
FAILURE_RATE = 0.02
OWNER, ROOT_USER = "bench", "root"


# --- the database -------------------------------------------------------------


def database_url(name: str) -> str:
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    if not base.startswith(("postgres://", "postgresql://")):
        sys.exit("bench/api.py runs on PostgreSQL: set DATABASE_URL to a postgres:// URL")
    return urlunsplit(urlsplit(base)._replace(path="/" + name))


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    name = parts.path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    os.environ.update({
        "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "loopr.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only", "LOG_LEVEL": "WARNING",
    })
    import django

    django.setup()


class InsertSelect:
    """INSERT INTO <the model's table> (<its columns>) SELECT … : each
    column's value is the SQL given for its field (by name; a string, or
    `(sql, params)`), else its default as a constant, else NULL. A column the
    model has gained since, with neither, stops the seed and names it."""

    def __init__(self, model, expressions: dict[str, str | tuple[str, list]]):
        from django.db import connection, models

        self.model, self.columns, self.values, self.params = model, [], [], []
        for field in model._meta.concrete_fields:
            given = expressions.get(field.name, expressions.get(field.attname))
            if given is None and (isinstance(field, models.AutoField) or field.has_db_default()):
                continue  # the sequence's, or the database's own default
            self.columns.append(connection.ops.quote_name(field.column))
            if isinstance(given, tuple):
                self.values.append(given[0])
                self.params.extend(given[1])
            elif given is not None:
                self.values.append(given)
            elif isinstance(field, models.DateTimeField) and (field.auto_now or field.auto_now_add):
                self.values.append("now()")
            elif field.has_default() or (field.empty_strings_allowed and not field.null):  # "" for text
                self.values.append("%s")
                self.params.append(field.get_db_prep_save(field.get_default(), connection))
            elif field.null:
                self.values.append("NULL")
            else:
                raise SystemExit(f"bench/api.py: no seed value for {model.__name__}.{field.name}")

    def run(self, from_sql: str, params: tuple | list = ()) -> int:
        from django.db import connection

        sql = (f"INSERT INTO {connection.ops.quote_name(self.model._meta.db_table)} ({', '.join(self.columns)}) "
               f"SELECT {', '.join(self.values)} {from_sql}")
        with connection.cursor() as cursor:
            cursor.execute(sql, (*self.params, *params))
            return cursor.rowcount


def seed(monitors: int, results: int) -> int:
    """Seeds the database; returns how many monitors carry results (the first ones)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from monitors.models import CheckResult, Incident, Monitor
    from notifications.models import Channel, Notification
    from teams.models import Team
    from workers.models import Region

    t0 = time.monotonic()
    user_model = get_user_model()
    owner = user_model.objects.create_user(OWNER, password="bench")
    user_model.objects.create_superuser(ROOT_USER, password="bench")
    team = Team.objects.personal_for(owner)
    now = timezone.now()
    # Live for the whole run: the list shows no unserved region.
    regions = {name: Region.objects.create(name=name, last_seen_at=now + timedelta(days=1)) for name in REGIONS}
    channel = Channel.objects.create(owner=owner, name="ops", kind="email", target="ops@example.com",
                                     is_default=True)
    quote = connection.ops.quote_name
    monitor_table, incident_table = quote(Monitor._meta.db_table), quote(Incident._meta.db_table)

    InsertSelect(Monitor, {
        "owner": ("%s", [owner.pk]), "team": ("%s", [team.pk]), "name": "'site ' || lpad(g::text, 6, '0')",
        "url": "'https://site' || g || '.example/health'", "interval": "300", "timeout": "10",
        "status": "'up'", "health": "'up'", "alerted_health": "'up'", "status_changed_at": "now()",
        "next_check_at": "now() + mod(g, 300) * interval '1 second'", "last_checked_at": "now()",
        # Unique: their defaults would be one constant for all.
        "badge_token": "md5(random()::text || g)", "ping_uuid": "gen_random_uuid()",
    }).run("FROM generate_series(1, %s) g", (monitors,))
    first_id = Monitor.objects.order_by("id").values_list("id", flat=True)[0]
    # Every monitor alerts through the owner's channel; one in ten is checked from two chosen regions.
    _link(Monitor, "channels", f"SELECT id, {channel.pk} FROM {monitor_table}")
    _link(Monitor, "regions", f"SELECT id, r FROM {monitor_table}, "
                              f"unnest(ARRAY[{regions['eu-west'].pk}, {regions['us-east'].pk}]) r WHERE mod(id, 10) = 0")
    print(f"seed: {monitors} monitors at {time.monotonic() - t0:.0f} s", flush=True)

    per_day = 86400 // SLOT_SECONDS
    busy = max(1, min(monitors, results // (DAYS * per_day * len(RESULT_REGIONS))))
    start = (now - timedelta(days=DAYS)).replace(second=0, microsecond=0)
    ok = ("f >= %s", [FAILURE_RATE])
    results_insert = InsertSelect(CheckResult, {
        # No node: results name their node through the node table now, and the bench has none.
        "monitor": ("%s + m", [first_id]), "region": "r",
        "scheduled_at": ("%s + s * %s * interval '1 second'", [start, SLOT_SECONDS]),
        "checked_at": ("%s + s * %s * interval '1 second' + (20 + 200 * f) * interval '1 millisecond'",
                       [start, SLOT_SECONDS]),
        "ok": ok,
        "latency_ms": ("CASE WHEN f >= %s THEN 20 + 200 * f END", [FAILURE_RATE]),
        "status_code": ("CASE WHEN f >= %s THEN 200 END", [FAILURE_RATE]),
        "error_kind": ("CASE WHEN f >= %s THEN 'ok' ELSE 'timeout' END", [FAILURE_RATE]),
        "error": ("CASE WHEN f >= %s THEN '' ELSE 'timed out after 10 s' END", [FAILURE_RATE]),
    })
    stored = 0
    for day in range(DAYS):  # a day a statement, each in slot order: time-ordered, as ingest stores them
        stored += results_insert.run(
            "FROM (SELECT s, m, r, random() AS f FROM generate_series(%s, %s) s, generate_series(0, %s) m, "
            "unnest(%s::bigint[]) r ORDER BY s) checks",
            (day * per_day, (day + 1) * per_day - 1, busy - 1, [regions[n].pk for n in RESULT_REGIONS]),
        )
        print(f"seed: {stored} results ({day + 1}/{DAYS} days) at {time.monotonic() - t0:.0f} s", flush=True)

    # Two outages a busy monitor, one of them still open on every twentieth; each told to the channel.
    began = "%s - (k * 7 + mod(m, 7)) * interval '1 day'"
    InsertSelect(Incident, {
        "monitor": ("%s + m", [first_id]), "started_at": (began, [now]),
        "confirmed_at": (began + " + interval '1 minute'", [now]),
        "resolved_at": (f"CASE WHEN k = 0 AND mod(m, 20) = 0 THEN NULL ELSE {began} + interval '20 minutes' END", [now]),
        "cause_kind": "'timeout'", "cause": "'timed out after 10 s'",
    }).run("FROM generate_series(0, %s) m, generate_series(0, 1) k", (busy - 1,))
    InsertSelect(Notification, {
        "id": "gen_random_uuid()", "channel": str(channel.pk), "monitor": "i.monitor_id", "incident": "i.id",
        "event": "'down'", "context": "'{}'::jsonb", "status": "'sent'", "attempts": "1",
        "created_at": "i.confirmed_at", "sent_at": "i.confirmed_at", "next_attempt_at": "i.confirmed_at",
    }).run(f"FROM {incident_table} i")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {monitor_table} m SET current_incident_id = i.id, status = 'down', health = 'down' "
                       f"FROM {incident_table} i WHERE i.monitor_id = m.id AND i.resolved_at IS NULL")
    print(f"seed: incidents and notifications at {time.monotonic() - t0:.0f} s; VACUUM ANALYZE …", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # the state autovacuum would reach: statistics, visibility map
    print(f"seed: done in {time.monotonic() - t0:.0f} s", flush=True)
    return busy


def _link(model, name: str, select: str) -> None:
    from django.db import connection

    field = model._meta.get_field(name)
    through = field.remote_field.through
    source = through._meta.get_field(field.m2m_field_name()).column
    target = through._meta.get_field(field.m2m_reverse_field_name()).column
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {connection.ops.quote_name(through._meta.db_table)} ({source}, {target}) "
                       f"{select}")


# --- the web process ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_web(url: str, port: int) -> subprocess.Popen:
    """The Procfile's web process, on this database."""
    env = {**os.environ, "DATABASE_URL": url, "PORT": str(port), "LOOPR_BIND": "127.0.0.1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only", "LOG_LEVEL": "WARNING"}
    command = (ROOT / "Procfile").read_text().split("web:", 1)[1].splitlines()[0]
    command = command.replace("--access-logfile -", "")  # a line per request is not what is measured
    log = ROOT / "bench" / "out" / "api-web.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    web = subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=ROOT, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return web
        except OSError:
            time.sleep(0.1)
    web.kill()
    raise SystemExit("the web process did not start")


def sessions(base: str):
    """An API client (token of the owner of every monitor) and an admin client (the superuser's session)."""
    import requests
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from teams.models import ApiToken

    user_model = get_user_model()
    api = requests.Session()
    key = ApiToken.objects.cli_key(user_model.objects.get(username=OWNER))
    api.headers["Authorization"] = f"Token {key}"
    root = user_model.objects.get(username=ROOT_USER)
    session = SessionStore()
    session[SESSION_KEY] = str(root.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = root.get_session_auth_hash()
    session.create()
    admin = requests.Session()
    admin.cookies.set(settings.SESSION_COOKIE_NAME, session.session_key)
    return api, admin


# --- measuring ---------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(client, paths, samples: int) -> list[float]:
    """Milliseconds per request, one at a time; every answer must be a 200."""
    for path in paths(3):  # warm the process and the caches it has
        client.get(path).raise_for_status()
    times = []
    for path in paths(samples):
        t = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - t) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    return times


def measure(base: str, api, admin, monitors: int, busy: int, samples: int) -> list[tuple[str, list[float]]]:
    from monitors.models import Monitor

    ids = list(Monitor.objects.order_by("id").values_list("id", flat=True))
    busy_ids = ids[:busy]
    since = (datetime.now(dt_timezone.utc) - timedelta(days=DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    pages = max(1, monitors // 100)
    rng = random.Random(10)

    def each(template: str, pick=lambda: None):
        return lambda n: [base + template.format(pick()) for _ in range(n)]

    cases = [
        ("API: regions (the floor: a tiny query)", api, each("/api/v1/regions/")),
        ("API: monitor list, first page (100)", api, each("/api/v1/monitors/?page_size=100")),
        ("API: monitor list, a random page (100)", api,
         each("/api/v1/monitors/?page_size=100&page={}", lambda: rng.randint(1, pages))),
        ("API: a monitor's failures over 30 days", api,
         each("/api/v1/monitors/{}/results/?ok=false&since=" + since, lambda: rng.choice(busy_ids))),
        ("API: a monitor's latest results (100)", api,
         each("/api/v1/monitors/{}/results/", lambda: rng.choice(busy_ids))),
        ("API: monitor detail", api, each("/api/v1/monitors/{}/", lambda: rng.choice(ids))),
        ("API: incidents, first page", api, each("/api/v1/incidents/")),
        ("API: a monitor's incidents", api, each("/api/v1/incidents/?monitor={}", lambda: rng.choice(busy_ids))),
        ("admin: check results", admin, each("/admin/monitors/checkresult/")),
        ("admin: check results, failed only", admin, each("/admin/monitors/checkresult/?ok__exact=0")),
        ("admin: check results of a monitor", admin,
         each("/admin/monitors/checkresult/?monitor__id__exact={}", lambda: rng.choice(busy_ids))),
        ("admin: monitors", admin, each("/admin/monitors/monitor/")),
        ("admin: notifications", admin, each("/admin/notifications/notification/")),
        ("admin: incidents", admin, each("/admin/monitors/incident/")),
    ]
    rows = []
    for name, client, paths in cases:
        times = timed(client, paths, samples)
        rows.append((name, times))
        print(f"{name}: p50 {percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms", flush=True)
    return rows


def create_through_api(base: str, api, count: int, singles: int) -> list[tuple[str, float]]:
    """Seconds to create `singles` monitors one POST each, and `count` in lists of the bulk cap."""
    from monitors.api.serializers import MAX_BULK_CREATE

    def item(prefix: str, i: int) -> dict:
        return {"name": f"{prefix} {i}", "url": f"https://{prefix}{i}.example/", "interval": 300, "timeout": 10}

    t = time.perf_counter()
    for i in range(singles):
        response = api.post(base + "/api/v1/monitors/", json=item("single", i))
        if response.status_code != 201:
            raise SystemExit(f"POST: {response.status_code} {response.text[:300]}")
    single = time.perf_counter() - t
    print(f"created {singles} monitors one by one in {single:.1f} s", flush=True)
    t = time.perf_counter()
    for first in range(0, count, MAX_BULK_CREATE):
        items = [item("bulk", i) for i in range(first, min(count, first + MAX_BULK_CREATE))]
        response = api.post(base + "/api/v1/monitors/", json=items)
        if response.status_code != 201:
            raise SystemExit(f"bulk POST: {response.status_code} {response.text[:300]}")
    bulk = time.perf_counter() - t
    print(f"created {count} monitors in lists of {MAX_BULK_CREATE} in {bulk:.1f} s", flush=True)
    return [(f"{singles:,} monitors, one POST each", single),
            (f"{count:,} monitors, lists of {MAX_BULK_CREATE:,}", bulk)]


def render(rows, created, monitors: int, results: int, load_before: str, load_after: str) -> str:
    floor = percentile(rows[0][1], 50)
    lines = [
        f"API and admin with {monitors:,} monitors and {results:,} results "
        f"({datetime.now(dt_timezone.utc):%Y-%m-%d %H:%M} UTC; load before {load_before}, after {load_after}); "
        f"sequential requests to the Procfile's web process; ratio = p50 over the floor's p50:",
        "",
        "| request | p50 ms | p95 ms | p99 ms | p50 / floor |",
        "|---|---|---|---|---|",
    ]
    for name, times in rows:
        lines.append(f"| {name} | {percentile(times, 50):.1f} | {percentile(times, 95):.1f} | "
                     f"{percentile(times, 99):.1f} | {percentile(times, 50) / floor:.1f} × |")
    lines += ["", "| creating through the API | seconds | monitors/s |", "|---|---|---|"]
    for name, seconds in created:
        count = int(name.split(" ")[0].replace(",", ""))
        lines.append(f"| {name} | {seconds:.1f} | {count / seconds:.0f} |")
    return "\n".join(lines)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--monitors", type=int, default=100_000)
    parser.add_argument("--results", type=int, default=10_000_000)
    parser.add_argument("--create", type=int, default=10_000, help="monitors to create through the API in lists")
    parser.add_argument("--create-single", type=int, help="monitors to create one POST each (default: --create)")
    parser.add_argument("--samples", type=int, default=200, help="requests measured per row")
    parser.add_argument("--database", default="loopr_api_bench")
    parser.add_argument("--skip-seed", action="store_true", help="measure on the database seeded before")
    parser.add_argument("--seed-only", action="store_true", help="seed, measure nothing")
    args = parser.parse_args()

    url = database_url(args.database)
    if not args.skip_seed:
        recreate_database(url)
    setup_django(url)
    from django.core.management import call_command
    from django.db import connection

    from monitors.models import CheckResult, Monitor

    if args.skip_seed:
        Monitor.objects.exclude(name__startswith="site ").delete()  # what an earlier run created through the API
        busy = CheckResult.objects.values("monitor").distinct().count()
    else:
        call_command("migrate", verbosity=0)
        busy = seed(args.monitors, args.results)
    if args.seed_only:
        return 0
    monitors, results = Monitor.objects.count(), _estimated_rows(CheckResult)
    connection.close()  # the web process does the work from here

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(url, port)
    try:
        api, admin = sessions(base)
        load_before = load()
        rows = measure(base, api, admin, monitors, busy, args.samples)
        singles = args.create if args.create_single is None else args.create_single
        created = create_through_api(base, api, args.create, singles) if args.create else []
        load_after = load()
    finally:
        os.killpg(web.pid, 15)
        web.wait()
    print()
    print(render(rows, created, monitors, results, load_before, load_after))
    return 0


def _estimated_rows(model) -> int:
    from loopr.admin import planned_rows

    return planned_rows(model.objects.all())


if __name__ == "__main__":
    sys.exit(main())
