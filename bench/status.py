"""Public status pages and /metrics at scale: a PostgreSQL database seeded
(by bench/api.py's seed) with 10,000 monitors and millions of results, 90
days of rollups for every monitor, and a page of 200 components; then, through
the Procfile's web process, the latency of the page, its JSON and a 304, and
the time of a /metrics scrape of all 10,000 monitors. What the central worker
does ahead of requests (the page's snapshot, the uptime ratios, a badge's
figures) is run in this process first, and timed; it uses the shared cache
of REDIS_URL, as the web process does.

    python bench/status.py                                   # 10 k monitors, 10 M results
    python bench/status.py --results 1000000                 # quicker seed
    python bench/status.py --skip-seed                       # measure again

Goals (issue 14): page p95 <= 50 ms for 200 components with 10 M results
stored, its database cost independent of the number of results; a scrape of
10,000 monitors under 1 s.

Rollups are seeded as SQL (what `roll_up` would leave: a verdict row a
monitor a day for 90 days and an hour for the last day, rolled up to the
current hour), not by rolling up the seeded results, which would take the
run's hour on its own; the page reads rollups, never the raw results but
those of the current hour. Prints a Markdown table with the load average.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import api as base  # noqa: E402  (the seed, the web process, timing)

COMPONENTS = 200
ROLLUP_DAYS = 90
SLUG = "bench"


def seed_rollups() -> int:
    """Day and hour verdict rollups of every monitor, and the progress mark."""
    from django.db import connection
    from django.utils import timezone

    from monitors import rollups
    from monitors.models import Monitor, Rollup, RollupProgress

    now = timezone.now()
    today, hour = rollups.floor_to(now, rollups.DAY), rollups.floor_to(now, rollups.HOUR)
    common = {
        "monitor": "m.id", "region": "NULL", "checks": "c", "failed_checks": "f", "covered_seconds": "c * 300",
        "down_seconds": "CASE WHEN mod(m.id + d, 17) = 0 THEN f * 300 ELSE 0 END", "latency_count": "c - f",
        "latency_sum": "(c - f) * 120.0", "latency_min": "20", "latency_max": "220", "histogram": "'\\x00'::bytea",
    }
    monitors = f"FROM {connection.ops.quote_name(Monitor._meta.db_table)} m"
    days = base.InsertSelect(Rollup, {**common, "resolution": "'day'",
                                      "start": ("%s - d * interval '1 day'", [today])}).run(
        f"{monitors}, generate_series(1, %s) d, LATERAL (SELECT 288 AS c, mod(m.id * d, 7) AS f) x",
        (ROLLUP_DAYS - 1,))
    hours = base.InsertSelect(Rollup, {**common, "resolution": "'hour'",
                                       "start": ("%s - d * interval '1 hour'", [hour])}).run(
        f"{monitors}, generate_series(1, %s) d, LATERAL (SELECT 12 AS c, mod(m.id * d, 3) / 2 AS f) x",
        (int((hour - today).total_seconds() // 3600) + 24,))
    RollupProgress.objects.update_or_create(pk=1, defaults={"rolled_up_to": hour})
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Rollup._meta.db_table)}")
    return days + hours


def make_page(busy: int) -> None:
    from django.contrib.auth import get_user_model

    from monitors.models import Monitor
    from statuspages.models import StatusPage

    owner = get_user_model().objects.get(username=base.OWNER)
    StatusPage.objects.filter(slug=SLUG).delete()
    page = StatusPage.objects.create(owner=owner, name="Bench", slug=SLUG, public=True)
    # The monitors with results first (busy), then any: each component's raw hour is read too.
    picked = list(Monitor.objects.order_by("id")[:COMPONENTS])
    page.set_components([{"monitor": m, "name": f"Service {n}", "group": f"Group {n // 20}"}
                         for n, m in enumerate(picked)])
    print(f"page: {COMPONENTS} components, {min(busy, COMPONENTS)} of them with results", flush=True)


def build_cost() -> tuple[float, int]:
    """One cold snapshot build in this process: seconds and queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from statuspages import snapshot
    from statuspages.models import StatusPage

    page = StatusPage.objects.get(slug=SLUG)
    with CaptureQueriesContext(connection) as queries:
        t = time.perf_counter()
        snapshot.build(page, snapshot.fingerprint(page), timezone.now())
        seconds = time.perf_counter() - t
    return seconds, len(queries)


def worker_runs() -> list[tuple[str, float]]:
    """What the central worker does before anyone asks, run here and timed:
    the stale page's rebuild (statuspages.build_snapshots), the uptime ratios
    of every monitor (after a roll-up), and a badge's figures (as its first
    request computes and registers them; kept ready from then on)."""
    from monitors import figures
    from monitors.models import Monitor
    from statuspages import snapshot

    runs = []
    t = time.perf_counter()
    assert snapshot.refresh_stale(), "the bench page was not stale"
    runs.append(("the page's snapshot (build_snapshots)", time.perf_counter() - t))
    t = time.perf_counter()
    assert figures.refresh() == Monitor.objects.count()
    runs.append(("every monitor's uptime ratios (figures.refresh)", time.perf_counter() - t))
    t = time.perf_counter()
    figures.badge_stats(Monitor.objects.order_by("id").values_list("id", flat=True).first(), "30d")
    runs.append(("a monitor's badge windows, first asked", time.perf_counter() - t))
    for name, seconds in runs:
        print(f"worker: {name}: {seconds * 1000:.0f} ms", flush=True)
    return runs


def measure(url: str, samples: int) -> tuple[list, list]:
    import requests

    api, _ = base.sessions(url)
    visitor = requests.Session()
    page = f"{url}/status/{SLUG}/"
    # gunicorn's workers load Django after the port opens: the first request waits for that, whatever it asks.
    boot = time.perf_counter()
    visitor.get(f"{url}/healthz").raise_for_status()
    boot_ms = (time.perf_counter() - boot) * 1000
    cold = time.perf_counter()
    visitor.get(page).raise_for_status()
    cold_ms = (time.perf_counter() - cold) * 1000
    etag = visitor.get(page).headers["ETag"]
    plain = requests.Session()
    plain.headers["Accept-Encoding"] = "identity"
    rows = [("the web process's first request (/healthz: its workers' start)", [boot_ms]),
            ("page, first request (the worker's snapshot)", [cold_ms])]
    for name, client, paths in [
        ("page HTML (200 components), gzip", visitor, lambda n: [page] * n),
        ("page HTML (200 components), not compressed", plain, lambda n: [page] * n),
        ("page status.json, gzip", visitor, lambda n: [page + "status.json"] * n),
        ("badge status.svg", visitor, lambda n: [f"{url}/badge/{_token()}/status.svg"] * n),
        ("badge uptime.svg?window=30d", visitor, lambda n: [f"{url}/badge/{_token()}/uptime.svg?window=30d"] * n),
    ]:
        times = base.timed(client, paths, samples)
        rows.append((name, times))
        print(f"{name}: p50 {base.percentile(times, 50):.1f} ms, p95 {base.percentile(times, 95):.1f} ms", flush=True)
    conditional = requests.Session()
    conditional.headers["If-None-Match"] = etag
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        response = conditional.get(page)
        times.append((time.perf_counter() - t) * 1000)
        assert response.status_code in (200, 304)
    rows.append(("page, conditional (304 while unchanged)", times))
    scrapes = []
    for _ in range(max(20, samples // 10)):
        t = time.perf_counter()
        response = api.get(f"{url}/metrics", headers={"Authorization": api.headers["Authorization"].replace(
            "Token", "Bearer")})
        scrapes.append((time.perf_counter() - t) * 1000)
        response.raise_for_status()
    series = sum(1 for line in response.text.splitlines() if line and not line.startswith("#"))
    print(f"scrape: p50 {base.percentile(scrapes, 50):.0f} ms, {series} series, {len(response.content)} bytes",
          flush=True)
    return rows, [(f"/metrics, first scrape of the web process ({series:,} series, "
                   f"{len(response.content) // 1024:,} KiB)", scrapes[:1]),
                  ("/metrics, the scrapes after it", scrapes[1:])]


def _token() -> str:
    from monitors.models import Monitor

    return Monitor.objects.order_by("id").values_list("badge_token", flat=True).first()


def render(rows, scrapes, build: tuple[float, int], runs, monitors: int, results: int, loads: tuple[str, str]
           ) -> str:
    from datetime import datetime, timezone

    lines = [f"Status pages and /metrics with {monitors:,} monitors and {results:,} results "
             f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; load before {loads[0]}, after {loads[1]}); "
             "sequential requests to the Procfile's web process (2 workers × 4 threads):", "",
             "| request | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|"]
    for name, times in rows + scrapes:
        lines.append(f"| {name} | {base.percentile(times, 50):.1f} | {base.percentile(times, 95):.1f} | "
                     f"{base.percentile(times, 99):.1f} |")
    lines += ["", f"A snapshot build of the 200-component page, in process: {build[0] * 1000:.0f} ms, "
                  f"{build[1]} queries (the same number at any result count: tests/statuspages/test_public.py).",
              "The central worker's share, in process, before the requests: "
              + "; ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in runs) + "."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--results", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--database", default="loopr_status_bench")
    parser.add_argument("--skip-seed", action="store_true")
    args = parser.parse_args()

    url = base.database_url(args.database)
    if not args.skip_seed:
        base.recreate_database(url)
    base.setup_django(url)
    from django.core.management import call_command
    from django.db import connection

    from monitors.models import CheckResult, Monitor

    if args.skip_seed:
        busy = CheckResult.objects.values("monitor").distinct().count()
    else:
        call_command("migrate", verbosity=0)
        busy = base.seed(args.monitors, args.results)
        t = time.monotonic()
        print(f"rollups: {seed_rollups():,} rows in {time.monotonic() - t:.0f} s", flush=True)
    from django.core.cache import cache

    cache.clear()  # the shared cache may hold another run's figures
    make_page(busy)
    build = build_cost()
    print(f"snapshot build: {build[0] * 1000:.0f} ms, {build[1]} queries", flush=True)
    runs = worker_runs()
    monitors, results = Monitor.objects.count(), base._estimated_rows(CheckResult)
    connection.close()

    port = base.free_port()
    web = base.start_web(url, port)
    try:
        before = base.load()
        rows, scrapes = measure(f"http://127.0.0.1:{port}", args.samples)
        after = base.load()
    finally:
        web.terminate()
        web.wait(timeout=30)
    print()
    print(render(rows, scrapes, build, runs, monitors, results, (before, after)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
