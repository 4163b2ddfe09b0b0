"""How the probe engine was chosen: the same `run_check` (requests, the
shared TLS context, the deadline reaper) driven by OS threads or by gevent
greenlets, in one process each, against bench/target.py.

    python bench/engines.py            # every engine, every workload, a table

Workloads: `instant` (as many checks as the engine can run, for checks/s and
CPU per check), `slow` (1,000 checks at once against a target that answers in
500 ms: how long until all are done), `hang` (500 checks against a target
that never answers, timeout 3 s: the process's CPU while it waits).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENGINES = ["threads-64", "threads-1000", "gevent-1000"]
WORKLOADS = {"instant": ("/", 4000, 5.0), "slow": ("/delay/500", 1000, 5.0), "hang": ("/hang", 500, 3.0)}


def child(engine: str, workload: str, base_urls: list[str]) -> dict:
    kind, size = engine.split("-")
    if kind == "gevent":
        from gevent import monkey

        monkey.patch_all()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopr.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    import django

    django.setup()
    from monitors.probes import CheckSpec, run_check

    path, count, timeout = WORKLOADS[workload]
    specs = [CheckSpec(url=base_urls[i % len(base_urls)] + path.lstrip("/"), timeout=timeout) for i in range(count)]
    run_check(specs[0]) if workload == "instant" else None  # warm the session, the TLS context, imports
    results: list = []
    cpu0, wall0 = time.process_time(), time.monotonic()
    if kind == "gevent":
        from gevent.pool import Pool

        pool = Pool(int(size))
        for spec in specs:
            pool.spawn(lambda s=spec: results.append(run_check(s)))
        pool.join()
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(int(size)) as pool:
            results = list(pool.map(run_check, specs))
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    kinds: dict[str, int] = {}
    for r in results:
        kinds[r.error_kind] = kinds.get(r.error_kind, 0) + 1
    return {"engine": engine, "workload": workload, "checks": count, "wall_s": round(wall, 3),
            "checks_per_s": round(count / wall, 1), "cpu_ms_per_check": round(1000 * cpu / count, 3),
            "cores_busy": round(cpu / wall, 3), "outcomes": kinds}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], sys.argv[4:])))
        return 0
    from run import free_port, wait_for_time_wait_to_drain, wait_port  # bench/run.py

    port = free_port()
    hosts = [f"127.0.0.{i}" for i in range(1, 9)]
    target = subprocess.Popen([sys.executable, str(ROOT / "bench" / "target.py"), str(port), *hosts])
    rows = []
    try:
        wait_port(port)
        for workload in WORKLOADS:
            for engine in ENGINES:
                wait_for_time_wait_to_drain()
                load = os.getloadavg()[0]
                out = subprocess.run(
                    [sys.executable, __file__, "--child", engine, workload, *(f"http://{h}:{port}/" for h in hosts)],
                    capture_output=True, text=True, check=True,
                )
                row = json.loads(out.stdout.strip().splitlines()[-1])
                row["load1"] = round(load, 2)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        target.terminate()
    print("\n| workload | engine | checks | wall s | checks/s | CPU ms/check | cores busy | outcomes | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['engine']} | {r['checks']} | {r['wall_s']} | {r['checks_per_s']} "
              f"| {r['cpu_ms_per_check']} | {r['cores_busy']} | {r['outcomes']} | {r['load1']} |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "bench"))
    sys.exit(main())
