"""How long plan, apply and export take for a loopr.yaml of N monitors
(python bench/config_file.py [N], on the database DATABASE_URL names;
it makes and then deletes a user of its own)."""

from __future__ import annotations

import os
import sys
import time

import django

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loopr.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from configfile.document import dumped, parse, read  # noqa: E402
from configfile.planning import apply, exported, plan  # noqa: E402
from configfile.scope import scope_for  # noqa: E402


def file_of(monitors: int) -> bytes:
    channels = [{"slug": f"ch{i}", "name": f"Channel {i}", "kind": "email", "target": f"ops{i}@example.com"}
                for i in range(10)]
    items = [{"slug": f"m{i}", "name": f"Monitor {i}", "url": f"https://m{i}.example/health", "interval": 60,
              "timeout": 5, "channels": [f"ch{i % 10}"],
              "assertions": [{"source": "status", "op": "eq", "value": 200}]} for i in range(monitors)]
    return dumped({"channels": channels, "monitors": items}).encode()


def timed(label: str, action):
    start = time.perf_counter()
    result = action()
    print(f"{label}: {time.perf_counter() - start:.2f} s")
    return result


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    user = get_user_model().objects.create(username=f"bench-config-{os.getpid()}")
    try:
        scope = scope_for(user)
        body = file_of(count)
        document = timed(f"parse and read ({len(body) // 1024} kB)", lambda: read(parse(body)))
        planned = timed(f"plan, {count} monitors to create", lambda: plan(scope, document))
        document.revision = planned.revision
        timed("apply", lambda: apply(scope, document))
        again = read(parse(body))
        unchanged = timed("plan, no change", lambda: plan(scope, again))
        assert unchanged.changes == []
        timed("export", lambda: exported(scope))
    finally:
        user.delete()


if __name__ == "__main__":
    main()
