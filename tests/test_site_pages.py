"""The pages around the API and the admin: the landing page and the API docs,
which must work on a machine with no internet access."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

ASSET = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_load_every_asset_from_loopr_itself(path):
    client = Client()
    page = client.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    # No CDN (nor any other outside address) anywhere in the page...
    assert re.findall(r"https?://", html) == []
    # ...and every script, stylesheet and icon it names is served right here.
    assets = ASSET.findall(html)
    # (Swagger UI's start-up script is the docs page's own, as a file: the CSP allows no inline script.)
    assert assets and all(url.startswith("/static/") or url == f"{path}?script=" for url in assets)
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        response.close()  # whitenoise answers with an open file


def test_the_landing_page_links_the_admin_the_api_its_docs_and_the_health_check():
    # Before anyone logs in: it is where the admin's "View site" leads.
    page = Client().get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert {"/admin/", "/api/v1/", "/api/docs/", "/api/redoc/", "/healthz"} <= set(ASSET.findall(html))
    assert "No alert reaches anyone until a monitor has a channel" in html


def test_the_admin_is_branded_loopr_and_its_view_site_link_goes_to_the_landing_page():
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "", "pw"))
    page = client.get("/admin/").content.decode()
    assert "<title>Loopr administration | Loopr</title>" in page
    assert '<a href="/admin/">Loopr</a>' in page and "Django" not in page
    assert '<a href="/">View site</a>' in page
