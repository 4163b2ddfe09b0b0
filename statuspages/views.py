"""The public side: a status page at `/status/<slug>/` (HTML), its
`status.json` and `feed.atom`, all from the page's snapshot (snapshot.py),
with validators and cache headers so that a CDN or a browser can hold them
and a conditional request is a 304; and each monitor's badges, found by its
unguessable badge token, never by id."""

from __future__ import annotations

import gzip
import re

from django.contrib.syndication.views import Feed
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.urls import reverse
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.feedgenerator import Atom1Feed
from django.utils.http import http_date

from monitors import figures
from monitors.choices import MonitorStatus, uptime_status
from monitors.models import Monitor

from . import badges, snapshot
from .models import StatusPage


ACCEPTS_GZIP = re.compile(r"\bgzip\b")  # as Django's GZipMiddleware reads Accept-Encoding


def visible_page(request: HttpRequest, slug: str) -> tuple[StatusPage, bool]:
    """The page and whether this is a preview by a member of its team. A
    page that is not public is, for anyone else, exactly an unknown slug: a 404."""
    page = StatusPage.objects.filter(slug=slug).first()
    if page is not None and page.public:
        return page, False
    user = request.user
    if page is not None and user.is_authenticated and StatusPage.objects.visible_to(user).filter(pk=page.pk).exists():
        return page, True
    raise Http404("No such status page.")


def _served(request: HttpRequest, slug: str, variant: str, content_type: str) -> HttpResponse:
    page, preview = visible_page(request, slug)
    part = snapshot.current(page, "entries" if variant == "feed" else variant)
    # The compressed part as it is kept, to a client that takes gzip (a CDN, a browser).
    compressed = variant != "feed" and ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")) is not None
    etag = part.etag[:-1] + f"-{variant}" + ("-gzip" if compressed else "") + '"'
    last_modified = int(part.generated_at.timestamp())
    if variant == "feed":
        response = FEED(request, page=page, entries=part.content)
    elif compressed:
        response = HttpResponse(part.content, content_type=content_type)
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(gzip.decompress(part.content), content_type=content_type)
    if variant != "feed":
        patch_vary_headers(response, ["Accept-Encoding"])
    response["ETag"] = etag
    response["Last-Modified"] = http_date(last_modified)
    # A preview of an unpublished page must not be kept by anyone on the way.
    response["Cache-Control"] = "private, no-store" if preview else f"public, max-age={snapshot.MAX_AGE}"
    return get_conditional_response(request, etag=etag, last_modified=last_modified, response=response)


def page_html(request: HttpRequest, slug: str) -> HttpResponse:
    return _served(request, slug, "html", "text/html; charset=utf-8")


def page_json(request: HttpRequest, slug: str) -> HttpResponse:
    return _served(request, slug, "document", "application/json")


def page_feed(request: HttpRequest, slug: str) -> HttpResponse:
    return _served(request, slug, "feed", "")


class IncidentFeed(Feed):
    """The page's outages and notices of the last 30 days (and any still open),
    from the snapshot `_served` read."""

    feed_type = Atom1Feed

    def get_object(self, request: HttpRequest, page: StatusPage, entries: list[dict]):
        return page, entries

    def title(self, obj) -> str:
        return f"{obj[0].name} incidents"

    def link(self, obj) -> str:
        return reverse("status-page", args=[obj[0].slug])

    def subtitle(self, obj) -> str:
        return obj[0].description or f"Outages and notices of {obj[0].name}."

    def items(self, obj) -> list[dict]:
        page = obj[0]
        return [{**entry, "page_url": reverse("status-page", args=[page.slug])} for entry in obj[1]]

    def item_title(self, item: dict) -> str:
        return f"{item['title']} ({item['status']})"

    def item_description(self, item: dict) -> str:
        lines = [f"Affects: {', '.join(item['components'])}."] if item["components"] else []
        if item["cause"]:
            lines.append(item["cause"])
        lines += [f"{u['at']:%Y-%m-%d %H:%M} UTC, {u['status']}: {u['message']}" for u in item["updates"]]
        return "\n".join(lines)

    def item_link(self, item: dict) -> str:
        return f"{item['page_url']}#{item['id']}"

    def item_pubdate(self, item: dict):
        return item["started_at"]

    def item_updateddate(self, item: dict):
        times = [item["started_at"], item["resolved_at"], *[u["at"] for u in item["updates"]]]
        return max(t for t in times if t is not None)


FEED = IncidentFeed()


# --- badges ----------------------------------------------------------------------

BADGE_MAX_AGE = 60


def _badge_monitor(token: str) -> Monitor:
    # One look-up by the unique token, found or not: an unknown and a rotated
    # token are the same 404 after the same query.
    monitor = Monitor.objects.filter(badge_token=token).only(
        "pk", "status", "interval", "latency_threshold_ms").first()
    if monitor is None:
        raise Http404("No such badge.")
    return monitor


def _window(request: HttpRequest) -> str:
    name = request.GET.get("window", "24h")
    if name not in figures.BADGE_WINDOWS:
        raise BadBadgeQuery(f"window: one of {', '.join(figures.BADGE_WINDOWS)}.")
    return name


class BadBadgeQuery(Exception):
    pass


def _badge(request: HttpRequest, token: str, kind: str) -> tuple[str, str, str]:
    monitor = _badge_monitor(token)
    if kind == "status":
        return "status", monitor.status, badges.status_color(monitor.status)
    name = _window(request)
    stats = figures.badge_stats(monitor.pk, name)
    if kind == "uptime":
        status = uptime_status(stats.uptime_percent)
        return f"uptime {name}", badges.uptime_text(stats.uptime_percent), (
            badges.NO_DATA_COLOR if status is None else status.color)
    p95 = stats.percentile(0.95)
    slow = p95 is not None and monitor.latency_threshold_ms is not None and p95 > monitor.latency_threshold_ms
    color = badges.NO_DATA_COLOR if p95 is None else MonitorStatus.DEGRADED.color if slow else MonitorStatus.UP.color
    return f"p95 {name}", badges.latency_text(p95), color


def badge(request: HttpRequest, token: str, kind: str, fmt: str) -> HttpResponse:
    try:
        label, message, color = _badge(request, token, kind)
    except BadBadgeQuery as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
    label = request.GET.get("label", label)
    if fmt == "json":
        response = JsonResponse(badges.shields(label, message, color))
    else:
        response = HttpResponse(badges.svg(label, message, color), content_type="image/svg+xml")
    response["Cache-Control"] = f"public, max-age={BADGE_MAX_AGE}"
    return response
