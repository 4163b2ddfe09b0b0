"""A public status page against real processes: a probe node checks the
target, the central worker ingests, and the page, its JSON and the badge
follow the target down and back up, read over HTTP like any visitor."""

from __future__ import annotations

import pytest
import requests

from teams.models import ApiToken
from tests.factories import UserFactory
from tests.support.processes import wait_for

pytestmark = pytest.mark.e2e


def test_a_component_going_down_shows_on_the_public_page_and_its_badge(processes, live_server, target):
    user = UserFactory(username="ops")
    api = requests.Session()
    api.headers["Authorization"] = f"Token {ApiToken.objects.cli_key(user)}"
    processes.central()
    processes.probe("probe1")
    processes.beat()
    wait_for(lambda: api.get(f"{live_server.url}/api/v1/regions/").json(), timeout=60,
             message="region 'local' to report a live probe worker")
    monitors = [api.post(f"{live_server.url}/api/v1/monitors/", json={
        "name": f"internal-{path}", "url": target.url(path), "interval": 1, "timeout": 0.8, "retries": 1,
    }).json() for path in ("/api", "/web")]
    created = api.post(f"{live_server.url}/api/v1/status-pages/", json={
        "name": "Acme", "slug": "acme", "public": True,
        "components": [{"monitor": monitors[0]["id"], "name": "API"}, {"monitor": monitors[1]["id"], "name": "Web"}],
    })
    assert created.status_code == 201, created.text
    public = requests.Session()  # a visitor: no credentials
    page = f"{live_server.url}/status/acme/"

    def state() -> dict:
        return public.get(page + "status.json", timeout=10).json()

    wait_for(lambda: state()["status"] == "operational"
             and [c["status"] for c in state()["components"]] == ["up", "up"],
             timeout=30, message="both components up")

    target.behave("/api", status=503)
    wait_for(lambda: state()["status"] == "partial_outage", timeout=30, message="a partial outage")
    body = state()
    assert [(c["name"], c["status"]) for c in body["components"]] == [("API", "down"), ("Web", "up")]
    assert [(i["type"], i["status"], i["components"], i["cause"]) for i in body["incidents"]] == [
        ("outage", "open", ["API"], "Unexpected status code")]
    html = public.get(page, timeout=10).text
    assert "Partial outage" in html and "Unexpected status code" in html
    assert target.url("/api") not in html and "internal-" not in html
    badge = public.get(f"{live_server.url}/badge/{monitors[0]['badge_token']}/status.svg", timeout=10).text
    assert ">down</text>" in badge

    target.behave("/api", status=200)
    wait_for(lambda: state()["status"] == "operational", timeout=30, message="operational again")
    assert [i["status"] for i in state()["incidents"]] == ["resolved"]
