"""Two web processes serve the one snapshot the central worker's task built
in the shared cache (Redis): neither builds its own, and both follow the
worker's rebuild together."""

from __future__ import annotations

import pytest
import requests
from django.utils import timezone
from django.utils.http import http_date

from monitors.models import Monitor
from statuspages import snapshot, tasks
from statuspages.models import StatusPage
from tests.factories import MonitorFactory, UserFactory

pytestmark = pytest.mark.e2e


def test_two_web_processes_serve_the_snapshot_the_worker_built(processes):
    user = UserFactory(username="ops")
    monitors = [MonitorFactory(owner=user, name=name) for name in ("api", "web")]
    Monitor.objects.update(status="up", health="up")
    page = StatusPage.objects.create(owner=user, name="Acme", slug="acme", public=True)
    page.set_components([{"monitor": m, "name": m.name.upper()} for m in monitors])
    # The worker's run, here in the test's process: the web processes only read the cache.
    assert tasks.build_snapshots([page.pk]) == [page.pk]
    built = snapshot.current(page, "document")
    webs = [processes.web(f"web{n}", workers=1) for n in (1, 2)]

    def served() -> list[requests.Response]:
        # One client takes gzip (the compressed part as kept), the other not.
        return [requests.get(f"{web}/status/acme/status.json", headers={"Accept-Encoding": encoding}, timeout=10)
                for web, encoding in zip(webs, ["gzip", "identity"])]

    def etag(part: snapshot.Part, response: requests.Response) -> str:
        gzipped = "-gzip" if response.headers.get("Content-Encoding") == "gzip" else ""
        return part.etag[:-1] + f"-document{gzipped}" + '"'

    responses = served()
    assert [r.headers.get("Content-Encoding") for r in responses] == ["gzip", None]
    for response in responses:
        assert response.status_code == 200
        # The worker's snapshot itself: the same validator and time, not one built by the web process.
        assert response.headers["ETag"] == etag(built, response)
        assert response.headers["Last-Modified"] == http_date(int(built.generated_at.timestamp()))
        assert response.json()["status"] == "operational"

    Monitor.objects.filter(pk=monitors[0].pk).update(status="down", health="down", status_changed_at=timezone.now())
    assert tasks.build_snapshots([page.pk]) == [page.pk]
    rebuilt = snapshot.current(page, "document")
    for response in served():
        assert response.headers["ETag"] == etag(rebuilt, response)
        assert [c["status"] for c in response.json()["components"]] == ["down", "up"]
