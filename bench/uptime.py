"""Issue 12's query-latency scenario: 1,000 monitors with ~10 M raw results
over 90 days and their rollups, then the latency of what people read —
uptime, series, the monitor list with its uptime fields, results, the admin —
through the real web process, and 10,000 monitors created through the API.

    python bench/uptime.py                 # seed (~15-25 min here) and measure
    python bench/uptime.py --skip-seed     # measure again on the seeded database
    python bench/uptime.py --in-process 5  # each request in-process, best of 5 (CPU, SQL)

The seed (PostgreSQL only; database `--database`, default `loopr_uptime_bench`,
dropped and created): two regions, two nodes each; 990 monitors checked every
32 minutes and 10 (every hundredth, so one on each page of the list) every
minute, from both regions, for 90 days up to now — 10.6 M results in day
partitions, time-ordered as ingest writes them, ~2 % failed; three 20-minute
incidents a monitor (every fiftieth monitor has one still open) with a
notification each. Rolling up is the product's own (`rollups.roll_up`), up to
an hour before the seed ended, so every request also sums over an hour of
raw results not yet rolled up: the most the product ever has (an hour closes
into rollups two minutes after it ends).

Per-monitor requests are timed on the minute monitors (the worst case: 2,880
results a day). It prints a Markdown table with the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api import (  # noqa: E402  (bench/api.py: the harness both scenarios share)
    InsertSelect,
    create_through_api,
    database_url,
    free_port,
    load,
    percentile,
    recreate_database,
    sessions,
    setup_django,
    start_web,
    timed,
)

MONITORS, DAYS, SPARSE_EVERY, DENSE_EVERY = 1000, 90, 32, 100  # minutes between a sparse monitor's checks
REGIONS = ["eu-west", "us-east"]
OWNER, ROOT_USER = "bench", "root"
# Raw results are kept for the whole scenario (the product's default is 14 days).
RETENTION_DAYS = DAYS + 2


def seed(monitors: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from monitors import partitions, rollups
    from monitors.models import CheckResult, Incident, Monitor
    from notifications.models import Channel, Notification
    from teams.models import Team
    from workers.models import Region, WorkerNode

    t0 = time.monotonic()
    user_model = get_user_model()
    owner = user_model.objects.create_user(OWNER, password="bench")
    user_model.objects.create_superuser(ROOT_USER, password="bench")
    team = Team.objects.personal_for(owner)
    now = timezone.now().replace(second=0, microsecond=0)
    regions = [Region.objects.create(name=name, last_seen_at=now + timedelta(days=2)) for name in REGIONS]
    nodes = [WorkerNode.objects.create(name=f"probe-{r.name}-{n}@bench", region=r, last_heartbeat_at=now)
             for r in regions for n in range(2)]
    channel = Channel.objects.create(owner=owner, name="ops", kind="email", target="ops@example.com",
                                     is_default=True)
    quote = connection.ops.quote_name
    InsertSelect(Monitor, {
        "owner": ("%s", [owner.pk]), "team": ("%s", [team.pk]), "name": "'site ' || lpad(g::text, 6, '0')",
        "url": "'https://site' || g || '.example/health'",
        "interval": f"CASE WHEN mod(g, {DENSE_EVERY}) = 0 THEN 60 ELSE {SPARSE_EVERY * 60} END", "timeout": "10",
        "status": "'up'", "health": "'up'", "alerted_health": "'up'", "status_changed_at": "now()",
        "next_check_at": "now() + mod(g, 60) * interval '1 second'", "last_checked_at": "now()",
        # Unique: their defaults would be one constant for all.
        "badge_token": "md5(random()::text || g)", "ping_uuid": "gen_random_uuid()",
    }).run("FROM generate_series(1, %s) g", (monitors,))
    first_id = Monitor.objects.order_by("id").values_list("id", flat=True)[0]

    start = now - timedelta(days=DAYS)
    partitions.ensure_partitions(now.date(), back=DAYS + 1)
    minutes = DAYS * 1440
    node_of = {r.pk: [n.pk for n in nodes if n.region_id == r.pk][0] for r in regions}
    stored = 0
    for day in range(DAYS + 1):  # a day a statement, in slot order; the last one ends now
        lo, hi = day * 1440, min((day + 1) * 1440, minutes) - 1
        if lo > hi:
            break
        stored += insert_results(first_id, monitors, start, lo, hi, node_of)
        print(f"seed: {stored:,} results ({day + 1}/{DAYS} days) at {time.monotonic() - t0:.0f} s", flush=True)

    began = "%s - (k * 30 + mod(m, 30)) * interval '1 day'"
    InsertSelect(Incident, {
        "monitor": ("%s + m", [first_id]), "started_at": (began, [now]),
        "confirmed_at": (began + " + interval '1 minute'", [now]),
        "resolved_at": (f"CASE WHEN k = 0 AND mod(m, 50) = 0 THEN NULL ELSE {began} + interval '20 minutes' END",
                        [now]),
        "cause_kind": "'timeout'", "cause": "'timed out after 10 s'",
    }).run("FROM generate_series(0, %s) m, generate_series(0, 2) k", (monitors - 1,))
    InsertSelect(Notification, {
        "id": "gen_random_uuid()", "channel": str(channel.pk), "monitor": "i.monitor_id", "incident": "i.id",
        "event": "'down'", "context": "'{}'::jsonb", "status": "'sent'", "attempts": "1",
        "created_at": "i.confirmed_at", "sent_at": "i.confirmed_at", "next_attempt_at": "i.confirmed_at",
    }).run(f"FROM {quote(Incident._meta.db_table)} i")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {quote(Monitor._meta.db_table)} m SET current_incident_id = i.id, status = 'down', "
                       f"health = 'down' FROM {quote(Incident._meta.db_table)} i "
                       f"WHERE i.monitor_id = m.id AND i.resolved_at IS NULL")
        cursor.execute("VACUUM ANALYZE")
    print(f"seed: incidents at {time.monotonic() - t0:.0f} s; rolling up …", flush=True)
    seed_rollups()
    print(f"seed: done in {time.monotonic() - t0:.0f} s", flush=True)


def seed_rollups() -> None:
    """Yesterday and today rolled up by the product's own code (today up to
    an hour ago), then yesterday's buckets copied back over the 88 days
    before, shifted a day at a time: every day and hour of the 90 has the
    rows (and the table the size) that rolling up would give; the older
    ones' figures are yesterday's. Rolling up all 90 days here took hours
    (~60 hours rolled up in 5 minutes at load 11)."""
    from django.db import connection
    from django.utils import timezone

    from monitors import rollups
    from monitors.models import Rollup, RollupProgress

    now = timezone.now()
    yesterday = rollups.floor_to(now, rollups.DAY) - rollups.DAY
    Rollup.objects.all().delete()
    newest = rollups.newest_result_id()
    RollupProgress.objects.update_or_create(pk=1, defaults={"rolled_up_to": yesterday, "seen_id": newest,
                                                             "previous_seen_id": newest})
    began = time.monotonic()
    hours, _ = rollups.roll_up(now=now - timedelta(hours=1), budget_seconds=24 * 3600)
    print(f"seed: rolled up {hours} hours in {time.monotonic() - began:.0f} s", flush=True)
    fields = [f.column for f in Rollup._meta.concrete_fields if not f.primary_key and f.name != "start"]
    columns = ", ".join(fields)
    began = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Rollup._meta.db_table} ({columns}, start) SELECT {columns}, start - k * interval '1 day' "
            f"FROM {Rollup._meta.db_table}, generate_series(1, %s) k WHERE start >= %s AND start < %s",
            [DAYS - 2, yesterday, yesterday + rollups.DAY])
        copied = cursor.rowcount
        cursor.execute(f"VACUUM ANALYZE {Rollup._meta.db_table}")
    print(f"seed: {copied:,} buckets copied back in {time.monotonic() - began:.0f} s", flush=True)
    rollups.refresh_summaries()


def insert_results(first_id: int, monitors: int, start, lo: int, hi: int, node_of: dict[int, int]) -> int:
    """The results of minutes lo..hi after `start` (inclusive), in slot order."""
    from monitors.models import CheckResult

    results = InsertSelect(CheckResult, {
        "monitor": ("%s + m", [first_id]), "region": "r", "node": "n",
        "scheduled_at": ("%s + s * interval '1 minute'", [start]),
        "checked_at": ("%s + s * interval '1 minute' + (20 + 40 * f) * interval '1 millisecond'", [start]),
        "ok": "f >= 0.02",
        "latency_ms": "CASE WHEN f >= 0.02 THEN 20 + 880 * f * random() END",
        "status_code": "CASE WHEN f >= 0.02 THEN 200 END",
        "error_kind": "CASE WHEN f >= 0.02 THEN 'ok' ELSE 'timeout' END",
        "error": "CASE WHEN f >= 0.02 THEN '' ELSE 'HTTPSConnectionPool: Read timed out. (read timeout=10)' END",
    })
    return results.run(
        "FROM (SELECT s, m, r, n, random() AS f FROM generate_series(0, %s) m, "
        "LATERAL generate_series(CASE WHEN mod(m + 1, %s) = 0 THEN %s ELSE %s + mod(%s - mod(%s + m, %s), %s) END, "
        "%s, CASE WHEN mod(m + 1, %s) = 0 THEN 1 ELSE %s END) s, "
        "unnest(%s::bigint[], %s::bigint[]) AS rn(r, n) ORDER BY s, m, r) checks",
        (monitors - 1, DENSE_EVERY, lo, lo, SPARSE_EVERY, lo, SPARSE_EVERY, SPARSE_EVERY, hi, DENSE_EVERY,
         SPARSE_EVERY, list(node_of), list(node_of.values())),
    )


def top_up() -> int:
    """The results from where the seed stopped to now (the seed's checks go
    on), then rolled up as beat's task does every 30 s: what is left raw is
    what the product has at this minute of the hour."""
    from django.db.models import Max, Min
    from django.utils import timezone

    from monitors import partitions, rollups
    from monitors.models import CheckResult, Monitor
    from workers.models import WorkerNode

    ids = list(Monitor.objects.filter(name__startswith="site ").order_by("id").values_list("id", flat=True))
    dense = ids[DENSE_EVERY - 1]
    span = CheckResult.objects.filter(monitor_id=dense).aggregate(first=Min("scheduled_at"), last=Max("scheduled_at"))
    start = span["first"]
    lo = int((span["last"] - start).total_seconds() // 60) + 1
    hi = int((timezone.now() - start).total_seconds() // 60)
    node_of = {}
    for node in WorkerNode.objects.order_by("pk"):
        node_of.setdefault(node.region_id, node.pk)
    partitions.ensure_partitions(timezone.now().date())
    added = insert_results(ids[0], len(ids), start, lo, hi, node_of) if lo <= hi else 0
    rollups.roll_up(budget_seconds=3600)
    print(f"top-up: {added:,} results to now; rolled up to {rollups.rolled_up_to():%H:%M}", flush=True)
    return added


class Beat(threading.Thread):
    """The roll-up task every 30 s, as beat runs it, while requests are timed."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()

    def run(self) -> None:
        from django.db import connection

        from monitors import rollups

        while not self.stop.wait(30):
            rollups.roll_up()
        connection.close()


def cases(rng: random.Random) -> list[tuple[str, str, object]]:
    """What is timed: (name, "api" or "admin", paths(n) -> n paths), the same
    for the web process and in-process."""
    from django.utils import timezone

    from monitors.models import CheckResult, Monitor

    ids = list(Monitor.objects.filter(name__startswith="site ").order_by("id").values_list("id", flat=True))
    dense = list(Monitor.objects.filter(pk__in=ids, interval=60).values_list("id", flat=True))
    since = (timezone.now() - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    pages = max(1, len(ids) // 100)
    result_id = CheckResult.objects.filter(monitor_id=dense[0]).values_list("id", flat=True).first()

    def each(template: str, pick=lambda: rng.choice(dense)):
        return lambda n: [template.format(pick()) for _ in range(n)]

    return [
        ("API: regions (the floor: a tiny query)", "api", each("/api/v1/regions/")),
        ("API: monitor list, first page (100, with uptime fields)", "api", each("/api/v1/monitors/?page_size=100")),
        ("API: monitor list, a random page (100)", "api",
         each("/api/v1/monitors/?page_size=100&page={}", lambda: rng.randint(1, pages))),
        ("API: uptime `window=24h`", "api", each("/api/v1/monitors/{}/uptime/?window=24h")),
        ("API: uptime `window=30d`", "api", each("/api/v1/monitors/{}/uptime/?window=30d")),
        ("API: uptime `window=90d`", "api", each("/api/v1/monitors/{}/uptime/?window=90d")),
        ("API: series day × 90", "api", each("/api/v1/monitors/{}/series/?resolution=day")),
        ("API: series minute × 1440", "api", each("/api/v1/monitors/{}/series/?resolution=minute")),
        ("API: latest 100 results", "api", each("/api/v1/monitors/{}/results/")),
        ("API: failures over 30 days", "api", each("/api/v1/monitors/{}/results/?ok=false&since=" + since)),
        ("admin: monitors (with 24 h sparkline)", "admin", each("/admin/monitors/monitor/")),
        ("admin: a monitor's page (charts)", "admin", each("/admin/monitors/monitor/{}/change/")),
        ("admin: check results", "admin", each("/admin/monitors/checkresult/")),
        ("admin: check results, failed only", "admin", each("/admin/monitors/checkresult/?ok__exact=0")),
        ("admin: check results of a monitor", "admin", each("/admin/monitors/checkresult/?monitor__id__exact={}")),
        ("admin: a check result", "admin", each("/admin/monitors/checkresult/{}/change/", lambda: result_id)),
        ("admin: incidents", "admin", each("/admin/monitors/incident/")),
        ("admin: notifications", "admin", each("/admin/notifications/notification/")),
    ]


def measure(base: str, api, admin, samples: int) -> list[tuple[str, list[float]]]:
    clients = {"api": api, "admin": admin}
    rows = []
    for name, client, paths in cases(random.Random(12)):
        times = timed(clients[client], lambda n, paths=paths: [base + path for path in paths(n)], samples)
        rows.append((name, times))
        print(f"{name}: p50 {percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms", flush=True)
    return rows


def in_process(tries: int, only: str | None) -> str:
    """Each request through Django's test client in this process (no HTTP,
    no web server), the best of `tries` of each figure: wall, this process's
    CPU (what the machine's load does not inflate), the SQL time as the
    client saw it (waiting included) and the queries."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from teams.models import ApiToken

    user_model = get_user_model()
    key = ApiToken.objects.cli_key(user_model.objects.get(username=OWNER))
    api = Client(HTTP_AUTHORIZATION=f"Token {key}", HTTP_HOST="127.0.0.1")
    admin = Client(HTTP_HOST="127.0.0.1")
    admin.force_login(user_model.objects.get(username=ROOT_USER))
    clients = {"api": api, "admin": admin}
    sql: list[float] = []

    def timing(execute, statement, params, many, context):
        t = time.perf_counter()
        try:
            return execute(statement, params, many, context)
        finally:
            sql.append(time.perf_counter() - t)

    lines = ["| request | wall ms | CPU ms | SQL ms | queries |", "|---|---|---|---|---|"]
    for name, client, paths in cases(random.Random(12)):
        if only and only not in name:
            continue
        best = None
        for path in paths(1) + paths(tries):  # the first warms the process
            sql.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            with connection.execute_wrapper(timing):
                response = clients[client].get(path)
            figures = ((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, sum(sql) * 1000,
                       len(sql))
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.content[:300]!r}")
            best = figures if best is None else tuple(min(a, b) for a, b in zip(best, figures))
        lines.append(f"| {name} | {best[0]:.0f} | {best[1]:.0f} | {best[2]:.0f} | {best[3]} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def render(rows, created, results: int, tail: str, load_before: str, load_after: str) -> str:
    from datetime import datetime, timezone

    lines = [
        f"{MONITORS:,} monitors, {results:,} raw results over {DAYS} days and their rollups "
        f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; load before {load_before}, after {load_after}); "
        f"raw results not yet rolled up: {tail}; sequential requests to the Procfile's web process:",
        "",
        "| request | p50 ms | p95 ms | p99 ms | goal (p95) |",
        "|---|---|---|---|---|",
    ]
    for name, times in rows:
        goal = "≤ 200 ms" if name.startswith("admin") else "" if "floor" in name else "≤ 50 ms"
        lines.append(f"| {name} | {percentile(times, 50):.1f} | {percentile(times, 95):.1f} | "
                     f"{percentile(times, 99):.1f} | {goal} |")
    if created:
        lines += ["", "| creating through the API | seconds | monitors/s |", "|---|---|---|"]
        for name, seconds in created:
            if name.startswith("0 "):
                continue
            count = int(name.split(" ")[0].replace(",", ""))
            lines.append(f"| {name} | {seconds:.1f} | {count / seconds:.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200, help="requests measured per row")
    parser.add_argument("--create", type=int, default=10_000, help="monitors to create through the API in lists")
    parser.add_argument("--create-single", type=int, default=0, help="monitors to create one POST each")
    parser.add_argument("--database", default="loopr_uptime_bench")
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--rollups-only", action="store_true", help="redo the seed's rollups, then stop")
    parser.add_argument("--in-process", type=int, metavar="TRIES", default=0,
                        help="on the seeded database: each request in-process (test client), best of TRIES")
    parser.add_argument("--only", help="with --in-process: only the requests whose name contains this")
    args = parser.parse_args()
    os.environ["LOOPR_RESULTS_RETENTION_DAYS"] = str(RETENTION_DAYS)

    url = database_url(args.database)
    if args.in_process:
        args.skip_seed = True
    if not (args.skip_seed or args.rollups_only):
        recreate_database(url)
    setup_django(url)
    from django.core.management import call_command
    from django.db import connection

    from loopr.admin import planned_rows
    from monitors import rollups
    from monitors.models import CheckResult, Monitor

    if args.rollups_only:
        call_command("migrate", verbosity=0)
        seed_rollups()
        return 0
    if args.skip_seed:
        Monitor.objects.exclude(name__startswith="site ").delete()  # what an earlier run created
        call_command("migrate", verbosity=0)
    else:
        call_command("migrate", verbosity=0)
        seed(MONITORS)
    if args.seed_only:
        return 0
    top_up()
    if args.in_process:
        print(f"load {load()}")
        print(in_process(args.in_process, args.only))
        print(f"load {load()}")
        return 0
    results = planned_rows(CheckResult.objects.all())
    done = rollups.rolled_up_to()
    connection.close()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = start_web(url, port)
    try:
        api, admin = sessions(base)
        load_before = load()
        from django.utils import timezone

        tail = f"{(timezone.now() - done).total_seconds() / 60:.0f} min" if done else "all"
        beat = Beat()
        beat.start()
        rows = measure(base, api, admin, args.samples)
        created = create_through_api(base, api, args.create, args.create_single) if args.create else []
        load_after = load()
        beat.stop.set()
    finally:
        os.killpg(web.pid, 15)
        web.wait()
    print()
    print(render(rows, created, results, tail, load_before, load_after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
