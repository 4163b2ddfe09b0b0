"""The public status page in a real browser (headless Chromium), with
JavaScript on and off: what a visitor sees. Run alone with `-m browser`;
its screenshot is kept under test-artifacts/ (git-ignored)."""

from __future__ import annotations

import http.server
import os
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

from monitors.models import Monitor
from statuspages.models import StatusPage
from tests.factories import MonitorFactory
from tests.support import browser

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NO_BROWSER = pytest.mark.skipif(browser.chromium_path() is None and not os.environ.get("CI"),
                                reason="chromium is not installed (.ci/run installs it; on CI this fails)")


class Visible(HTMLParser):
    """Components as a reader meets them: name, status word, number of day bars."""

    def __init__(self):
        super().__init__()
        self.components: list[dict] = []
        self.overall = ""
        self._into: str | None = None

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if "component" in classes:
            self.components.append({"name": "", "status": "", "bars": 0})
        elif "bar" in classes and self.components:
            self.components[-1]["bars"] += 1
        elif "name" in classes:
            self._into = "name"
        elif "status" in classes:
            self._into = "status"
        elif "overall" in classes:
            self._into = "overall"

    def handle_endtag(self, tag):
        self._into = None

    def handle_data(self, data):
        if self._into == "overall":
            self.overall += data.strip()
        elif self._into and self.components:
            self.components[-1][self._into] += data.strip()


@pytest.fixture
def page_url(live_server, user):
    monitors = [MonitorFactory(owner=user, name=f"internal-{n}") for n in range(3)]
    Monitor.objects.filter(pk__in=[m.pk for m in monitors]).update(status="up", health="up")
    Monitor.objects.filter(pk=monitors[1].pk).update(status="down", health="down", failure_kind="timeout")
    page = StatusPage.objects.create(owner=user, name="Acme status", slug="acme", public=True)
    page.set_components([{"monitor": monitors[0], "name": "Public API", "group": "Core"},
                         {"monitor": monitors[1], "name": "Payments", "group": "Core"},
                         {"monitor": monitors[2], "name": "Website"}])
    return f"{live_server.url}/status/acme/"


@NO_BROWSER
@pytest.mark.parametrize("javascript", [True, False], ids=["javascript", "no-javascript"])
def test_a_visitor_sees_every_component_its_status_and_90_daily_bars(page_url, javascript):
    seen = Visible()
    seen.feed(browser.dom(page_url, javascript=javascript))
    assert seen.overall == "Partial outage"
    assert [(c["name"], c["status"], c["bars"]) for c in seen.components] == [
        ("Public API", "Up", 90), ("Payments", "Down", 90), ("Website", "Up", 90)]


@NO_BROWSER
def test_the_drivers_no_javascript_mode_really_runs_no_script():
    # A page that writes with a script: what the no-javascript run above
    # would never notice if JavaScript were still on.
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body><script>document.body.append('script ' + 'ran')</script></body></html>")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        assert "script ran" in browser.dom(url, javascript=True)
        assert "script ran" not in browser.dom(url, javascript=False)
    finally:
        server.shutdown()
        server.server_close()


@NO_BROWSER
def test_a_screenshot_of_the_page_is_kept(page_url):
    path = ARTIFACTS / "status-page.png"
    path.unlink(missing_ok=True)
    width, height = browser.screenshot(page_url, path, window=(1280, 1600))
    assert (width, height) == (1280, 1600)
    assert path.stat().st_size > 20_000  # a rendered page, not a blank one
