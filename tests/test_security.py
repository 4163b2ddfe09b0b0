"""The web's hygiene: login throttling, a Content-Security-Policy the pages
work under, and HTTPS settings that pass Django's deployment checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.factories import MonitorFactory, UserFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("login_url,next_url", [("/admin/login/", "/admin/"), ("/api/auth/login/", "/api/v1/")])
def test_many_wrong_passwords_lock_the_login_even_for_the_right_one(client, login_url, next_url, settings):
    UserFactory(username="alice", password="right-password", is_staff=True)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(login_url, {"username": "alice", "password": "wrong", "next": next_url})
    locked = client.post(login_url, {"username": "alice", "password": "right-password", "next": next_url})
    # Locked out: refused with 429, and no session.
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_few_wrong_passwords_then_the_right_one_logs_in(client, settings):
    UserFactory(username="alice", password="right-password", is_staff=True)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/admin/login/", {"username": "alice", "password": "wrong", "next": "/admin/"})
    ok = client.post("/admin/login/", {"username": "alice", "password": "right-password", "next": "/admin/"})
    assert ok.status_code == 302 and client.session["_auth_user_id"]


class _Scripts(HTMLParser):
    """Inline scripts (with code, not JSON data) and inline event handlers."""

    def __init__(self):
        super().__init__()
        self.inline: list[str] = []
        self._in_inline = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.inline += [f"{tag} {name}=" for name in attrs if name.startswith("on")]
        self._in_inline = tag == "script" and "src" not in attrs and attrs.get("type") != "application/json"

    def handle_data(self, data):
        if self._in_inline and data.strip():
            self.inline.append(data.strip()[:80])

    def handle_endtag(self, tag):
        self._in_inline = False


def test_every_page_sends_a_csp_without_inline_scripts_and_has_none(client):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    monitor = MonitorFactory(owner=admin)
    client.force_login(admin)
    pages = ["/", "/admin/", "/admin/monitors/monitor/", "/admin/monitors/monitor/add/",
             f"/admin/monitors/monitor/{monitor.pk}/change/", "/admin/notifications/channel/add/",
             "/api/docs/", "/api/redoc/", "/api/v1/", "/api/v1/monitors/"]
    for url in pages:
        response = client.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in policy
        parser = _Scripts()
        parser.feed(response.content.decode())
        assert parser.inline == [], (url, parser.inline)
    # Swagger UI's start-up script is a file of its own, from Loopr.
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_the_health_check_is_not_redirected_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/").status_code == 301
    assert client.get("/healthz").status_code in (200, 503)


def test_behind_https_the_deployment_checks_pass():
    env = {
        "PATH": os.environ["PATH"], "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
        "REDIS_URL": os.environ.get("REDIS_URL", ""), "SECRET_KEY": secrets.token_hex(32), "DEBUG": "false",
        "LOOPR_HTTPS": "true", "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
        # Whether every subdomain is HTTPS-only too is the operator's to say (W005, W021).
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true", "SECURE_HSTS_PRELOAD": "true",
        "ALLOWED_HOSTS": "loopr.example.com",
    }
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
