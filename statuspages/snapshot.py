"""What the public sees of a status page, built once and served many times.

A snapshot is the page's whole public content (its status.json document,
its rendered HTML and its feed's entries) kept in the shared cache
(loopr/cache.py) under the page. The central worker keeps it current
(`refresh_stale`, every few seconds from beat): a page is rebuilt when its
components' statuses or the page itself (its components, its notices)
changed, or when its snapshot is older than MAX_AGE. A request costs the
page by slug and a cache read, and never waits for a build, but for a page
never built (new, or its snapshot lost with the cache), which it builds
itself. Building reads rollups summed by the database, so it costs the same
however many results are stored.

Only what is meant for visitors goes in: display names, statuses, uptime
figures, incident times and causes by error kind (the message only where the
owner opted in). Never a target URL, header, monitor id or another monitor.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.safestring import mark_safe

from monitors import rollups
from monitors.choices import ErrorKind, MonitorStatus, uptime_status
from monitors.models import Incident

from .choices import PageStatus
from .models import Component, StatusPage, StatusReport

MAX_AGE = 60  # seconds a snapshot is served before it is rebuilt anyway
DAYS = 90
HISTORY = timedelta(days=30)  # resolved incidents and notices shown this long


def etag_of(fingerprint: str, generated_at: datetime) -> str:
    return '"' + hashlib.sha256(fingerprint.encode() + generated_at.isoformat().encode()).hexdigest()[:32] + '"'


@dataclass
class Snapshot:
    fingerprint: str
    generated_at: datetime
    document: bytes  # status.json
    html: bytes
    entries: list[dict]  # the feed's, newest first

    @property
    def etag(self) -> str:
        return etag_of(self.fingerprint, self.generated_at)

    def parts(self) -> dict[str, bytes | list]:
        # The HTML and JSON of 200 components are a megabyte each and shrink
        # fifty times: kept (and sent to clients that take it) compressed.
        return {"html": gzip.compress(self.html, mtime=0), "document": gzip.compress(self.document, mtime=0),
                "entries": self.entries}


@dataclass
class Part:
    """One part of a page's snapshot, as a request reads it: the HTML or the
    JSON gzip-compressed, or the feed's entries."""

    fingerprint: str
    generated_at: datetime
    content: bytes | list

    @property
    def etag(self) -> str:
        return etag_of(self.fingerprint, self.generated_at)


# A snapshot outlives its rebuilds by far: while the central worker is away
# (and with it every status change) the page is served as it last was, with
# the time it was generated, rather than built at request time.
KEEP = 24 * 3600
# A snapshot this old was not rebuilt by the worker for ten of its runs.
ABANDONED = timedelta(seconds=10 * MAX_AGE)


def _mark_key(page_pk: int) -> str:
    # When and from what the snapshot was built: what the worker compares.
    return f"loopr:statuspage:{page_pk}:mark"


def _part_key(page_pk: int, part: str) -> str:
    return f"loopr:statuspage:{page_pk}:{part}"


def fingerprints(page_ids: list[int] | None = None) -> dict[int, str]:
    """What, when it changes, makes a page's snapshot stale before its time:
    the page's own update time and its components' statuses, for these pages
    (or all) in two queries."""
    pages = StatusPage.objects.order_by()
    components = Component.objects.order_by("page_id", "monitor_id")
    if page_ids is not None:
        pages, components = pages.filter(pk__in=page_ids), components.filter(page_id__in=page_ids)
    statuses: dict[int, list] = {}
    for page_id, *status in components.values_list("page_id", "monitor_id", "monitor__status",
                                                   "monitor__status_changed_at"):
        statuses.setdefault(page_id, []).append(tuple(status))
    return {pk: hashlib.sha256(repr((updated_at, statuses.get(pk, []))).encode()).hexdigest()
            for pk, updated_at in pages.values_list("pk", "updated_at")}


def fingerprint(page: StatusPage) -> str:
    return fingerprints([page.pk])[page.pk]


def current(page: StatusPage, part: str) -> Part:
    """What a request serves: a part of the snapshot the worker keeps, read
    with its mark in one round trip. Only a page never built is built here
    (and kept for the next request); and one the worker has evidently stopped
    keeping (ABANDONED old: no beat, or a worker on another cache), by one
    request, while the others are served the old one."""
    keys = [_mark_key(page.pk), _part_key(page.pk, part)]
    kept = cache.get_many(keys)
    if len(kept) == len(keys):
        (fingerprint, generated_at), content = kept[keys[0]], kept[keys[1]]
        if timezone.now() - generated_at < ABANDONED or not cache.add(_part_key(page.pk, "rescue"), 1, MAX_AGE):
            return Part(fingerprint, generated_at, content)
    snapshot = rebuild(page)
    return Part(snapshot.fingerprint, snapshot.generated_at, snapshot.parts()[part])


def rebuild(page: StatusPage, mark: str | None = None, now: datetime | None = None) -> Snapshot:
    now = now or timezone.now()
    snapshot = build(page, mark or fingerprint(page), now)
    # One MSET: a reader never gets a part of one build with the mark of another.
    cache.set_many({_mark_key(page.pk): (snapshot.fingerprint, now),
                    **{_part_key(page.pk, name): content for name, content in snapshot.parts().items()}}, KEEP)
    return snapshot


def stale(page_ids: list[int] | None = None, now: datetime | None = None) -> dict[int, str]:
    """The pages (of these, or all) whose snapshot is missing, of other
    statuses or older than MAX_AGE, each with its current fingerprint."""
    now = now or timezone.now()
    marks = fingerprints(page_ids)
    kept = cache.get_many([_mark_key(pk) for pk in marks])
    out = {}
    for pk, mark in marks.items():
        built = kept.get(_mark_key(pk))
        if built is None or built[0] != mark or now - built[1] >= timedelta(seconds=MAX_AGE):
            out[pk] = mark
    return out


def refresh_stale(page_ids: list[int] | None = None, now: datetime | None = None) -> list[int]:
    """Rebuild the stale pages among these (or all); the ids rebuilt. A page
    rebuilt meanwhile (by another run of the same task) is left alone."""
    rebuilt = []
    found = stale(page_ids, now)
    for page in StatusPage.objects.filter(pk__in=list(found)).order_by("pk"):
        rebuild(page, found[page.pk], now)
        rebuilt.append(page.pk)
    return rebuilt


def build(page: StatusPage, mark: str, now: datetime) -> Snapshot:
    # Of the monitor only what is shown (its JSON columns are large and never shown).
    components = list(Component.objects.filter(page=page).select_related("monitor").only(
        "name", "group", "position", "show_error_message", "monitor__status", "monitor__failure_kind",
        "monitor__failure_message").order_by("position", "pk"))
    document = _document(page, components, now)
    causes = [_cause(component) for component in components]
    context = {"page": page, "doc": document, "groups": _groups(document["components"], causes),
               "status_label": PageStatus(document["status"]).label, "generated_at": now}
    html = render_to_string("statuspages/page.html", context)
    return Snapshot(mark, now, json.dumps(document, cls=DjangoJSONEncoder).encode(), html.encode(),
                    document["incidents"])


def _document(page: StatusPage, components: list[Component], now: datetime) -> dict:
    first = rollups.floor_to(now, rollups.DAY) - (DAYS - 1) * rollups.DAY
    by_day = rollups.days([c.monitor_id for c in components], first, rollups.ceil_to(now, rollups.DAY),
                          latency=False)
    dates = [(first + index * rollups.DAY, f"{first + index * rollups.DAY:%Y-%m-%d}") for index in range(DAYS)]
    shown = []
    for component in components:
        # The 90 days' uptime from their covered and down time (what Stats.add would sum, without the latency).
        total = rollups.Stats()
        days = []
        for day, label in dates:
            stats = by_day.get((component.monitor_id, day))
            if stats is not None:
                total.covered_seconds += stats.covered_seconds
                total.down_seconds += stats.down_seconds
            days.append({"date": label, "uptime_percent": stats.uptime_percent if stats else None})
        shown.append({"name": component.name, "group": component.group or None, "status": component.monitor.status,
                      "uptime_percent_90d": total.uptime_percent, "days": days})
    return {
        "name": page.name,
        "status": PageStatus.of(c["status"] for c in shown),
        "components": shown,
        "incidents": _outages(page, components, now) + _notices(page, components, now),
        "generated_at": now,
    }


def _cause(component: Component) -> str | None:
    monitor = component.monitor
    if monitor.status not in (MonitorStatus.DOWN, MonitorStatus.DEGRADED) or not monitor.failure_kind:
        return None
    if component.show_error_message and monitor.failure_message:
        return monitor.failure_message
    return _kind_label(monitor.failure_kind)


def _kind_label(kind: str) -> str:
    return ErrorKind(kind).label if kind in ErrorKind.values else "Check failed"


def _anchor(page: StatusPage, kind: str, pk: int) -> str:
    # Stable and unique per incident, without its database id.
    return f"{kind}-" + salted_hmac("loopr.statuspage.anchor", f"{page.pk}:{kind}:{pk}").hexdigest()[:12]


def _outages(page: StatusPage, components: list[Component], now: datetime) -> list[dict]:
    names = {c.monitor_id: c for c in components}
    incidents = Incident.objects.filter(monitor_id__in=list(names)).filter(
        Q(resolved_at__isnull=True) | Q(resolved_at__gte=now - HISTORY)).order_by("-started_at")
    out = []
    for incident in incidents.only("pk", "monitor_id", "started_at", "resolved_at", "cause_kind", "cause"):
        component = names[incident.monitor_id]
        cause = (incident.cause if component.show_error_message and incident.cause
                 else _kind_label(incident.cause_kind) if incident.cause_kind else None)
        out.append({"id": _anchor(page, "outage", incident.pk), "type": "outage", "title": f"{component.name} down",
                    "status": "open" if incident.resolved_at is None else "resolved",
                    "components": [component.name], "started_at": incident.started_at,
                    "resolved_at": incident.resolved_at, "cause": cause, "updates": []})
    return out


def _notices(page: StatusPage, components: list[Component], now: datetime) -> list[dict]:
    names = {c.monitor_id: c.name for c in components}
    reports = (StatusReport.objects.filter(page=page).shown(now - HISTORY)
               .prefetch_related("updates", "monitors").order_by("-created_at", "-pk"))
    out = []
    for report in reports:
        updates = sorted(report.updates.all(), key=lambda u: (u.at, u.pk), reverse=True)
        out.append({"id": _anchor(page, "notice", report.pk), "type": "notice", "title": report.title,
                    "status": report.status, "components": [names[m.pk] for m in report.monitors.all() if m.pk in names],
                    "started_at": report.created_at, "resolved_at": report.resolved_at, "cause": None,
                    "updates": [{"at": u.at, "status": u.status, "message": u.message} for u in updates]})
    return out


def bars(days: list[dict]) -> str:
    """A component's 90 day bars as HTML, each titled with its date and
    figure. Built here, not by the template: 18,000 bars on a page of 200
    components take the template engine seconds, this a few milliseconds.
    Dates and numbers only: nothing to escape."""
    return mark_safe("".join(_bar(day["date"], day["uptime_percent"]) for day in days))


def _bar(date: str, uptime: float | None) -> str:
    figure = "no data" if uptime is None else f"{uptime:.3f} %"
    return f'<li class="bar bar-{uptime_status(uptime) or "none"}" title="{date}: {figure}"></li>'


def _groups(components: list[dict], causes: list[str | None]) -> list[dict]:
    """Components under their groups, in the order each group first appears."""
    groups: dict[str | None, list] = {}
    for component, cause in zip(components, causes):
        groups.setdefault(component["group"], []).append({**component, "bars": bars(component["days"]), "cause": cause,
                                                          "status_label": MonitorStatus(component["status"]).label})
    return [{"name": name, "components": members} for name, members in groups.items()]

