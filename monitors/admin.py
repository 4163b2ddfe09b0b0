from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe

from loopr.admin import (
    BigTableAdmin,
    CountedDeleteAdmin,
    DeclaredAdmin,
    OwnedByUserAdmin,
    OwnedModelAdmin,
    OwnedRelatedFieldListFilter,
    ReadOnlyAdmin,
    ReadOnlyInline,
    TeamOwnedForm,
)
from loopr.formatting import format_duration
from notifications.admin import AlertReachWarnings
from notifications.models import Channel, Notification
from teams import audit
from teams.models import Team

from .acknowledgement import NotAcknowledgeable, acknowledge
from . import rollups
from .choices import AcknowledgedVia, MaintenanceKind, MonitorStatus, Resolution, uptime_status
from .regions import Region
from .models import ATTENTION, CheckResult, Incident, MaintenanceWindow, Monitor, StatusChange


def timestamp(value) -> str:
    """To the second, in the admin's time zone: checks run seconds apart."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def status_badge(value: str) -> str:
    """A status in its colour (MonitorStatus.color), as every admin page shows it."""
    status = MonitorStatus(value)
    return format_html('<span class="loopr-status" style="background: {}; color: #fff; padding: 1px 6px; '
                       'border-radius: 3px; white-space: nowrap">{}</span>', status.color, status.label)


def percent(value: float | None) -> str:
    # Already floored to three decimals by rollups (99.9996 shows as 99.999).
    return "—" if value is None else f"{value:.3f} %"


UPTIME_DAYS = 90
BAR_WIDTH, BAR_GAP, BAR_HEIGHT = 6, 2, 30
NO_DATA_COLOR = "#d0d0d0"
LATEST_RESULTS = 10


def day_color(uptime: float | None) -> str:
    status = uptime_status(uptime)
    return NO_DATA_COLOR if status is None else status.color


def uptime_bars(monitor: Monitor, now=None) -> str:
    """The last 90 (UTC) days' uptime as an inline SVG, a bar a day (grey for
    a day with no data), from the day rollups: a few queries, no raw scan
    but today's results since the last roll-up."""
    now = now or timezone.now()
    first = rollups.floor_to(now, rollups.DAY) - (UPTIME_DAYS - 1) * rollups.DAY
    buckets = rollups.days([monitor.pk], first, rollups.ceil_to(now, rollups.DAY), latency=False)
    bars = []
    for index in range(UPTIME_DAYS):
        day = first + index * rollups.DAY
        stats = buckets.get((monitor.pk, day))
        uptime = stats.uptime_percent if stats is not None else None
        bars.append((index * (BAR_WIDTH + BAR_GAP), BAR_WIDTH, BAR_HEIGHT, day_color(uptime),
                     f"{day:%Y-%m-%d}: {'no data' if uptime is None else percent(uptime)}"))
    width = UPTIME_DAYS * (BAR_WIDTH + BAR_GAP) - BAR_GAP
    return format_html(
        '<svg class="loopr-uptime-bars" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="uptime per day, last {} days">{}</svg>',
        width, BAR_HEIGHT, width, BAR_HEIGHT, UPTIME_DAYS,
        format_html_join("", '<rect x="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>', bars),
    )


SPARK_BAR, SPARK_HEIGHT = 4, 16


def sparkline(hours) -> str:
    """A monitor's last 24 hours as an inline SVG for its row in the list: a
    bar an hour, as tall as its average latency (against the row's slowest
    hour), coloured by its uptime (grey: no data). From rollups.summaries.
    Built as one string (numbers and fixed colours; labels escaped): a
    page draws 2,400 bars, and format_html per bar cost most of the page."""
    slowest = max((average for _, average, _ in hours if average), default=0)
    bars = []
    for index, (start, average, uptime) in enumerate(hours):
        height = max(2, round(SPARK_HEIGHT * average / slowest)) if average and slowest else 2
        label = timezone.localtime(start).strftime("%H:%M")
        label += ": no data" if uptime is None else f": {percent(uptime)}" + (
            f", {average:.0f} ms" if average is not None else "")
        bars.append(f'<rect x="{index * (SPARK_BAR + 1)}" y="{SPARK_HEIGHT - height}" width="{SPARK_BAR}" '
                    f'height="{height}" fill="{day_color(uptime)}"><title>{escape(label)}</title></rect>')
    width = len(hours) * (SPARK_BAR + 1)
    return mark_safe(  # noqa: S308 (every value above is a number, a fixed colour or escaped)
        f'<svg class="loopr-sparkline" width="{width}" height="{SPARK_HEIGHT}" viewBox="0 0 {width} {SPARK_HEIGHT}" '
        f'role="img" aria-label="last 24 hours: latency and uptime per hour">{"".join(bars)}</svg>')


CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 480, 120, 4
CHART_COLORS = ["#417690", "#e07b00", "#6f42c1", "#2e8540", "#c0392b", "#7f8c8d"]


def latency_chart(monitor: Monitor, now=None) -> str:
    """The last 24 hours' average response time per region (a line each, an
    hour a point) as an inline SVG, from the hour rollups and the raw results
    since the last roll-up: one monitor's 48-odd buckets."""
    now = now or timezone.now()
    first = rollups.floor_to(now, rollups.HOUR) - (rollups.SPARK_HOURS - 1) * rollups.HOUR
    buckets = rollups.series(monitor.pk, Resolution.HOUR, first, rollups.ceil_to(now, rollups.HOUR))
    lines: dict[int, dict[int, float]] = {}
    for (region_id, start), stats in buckets.items():
        if region_id is not None and stats.latency_count:
            index = int((start - first) / rollups.HOUR)
            lines.setdefault(region_id, {})[index] = stats.latency_sum / stats.latency_count
    if not lines:
        return format_html("<p>{}</p>", "No response times in the last 24 hours.")
    names = dict(Region.objects.filter(pk__in=lines).values_list("pk", "name"))
    slowest = max(max(points.values()) for points in lines.values())
    step = (CHART_WIDTH - 2 * CHART_PAD) / (rollups.SPARK_HOURS - 1)
    height = CHART_HEIGHT - 2 * CHART_PAD
    shapes, legend = [], []
    for n, region_id in enumerate(sorted(lines, key=lambda r: names.get(r, ""))):
        color = CHART_COLORS[n % len(CHART_COLORS)]
        points = sorted(lines[region_id].items())
        xy = [(CHART_PAD + i * step, CHART_PAD + height * (1 - ms / slowest), ms) for i, ms in points]
        shapes.append(format_html('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>', color,
                                  " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in xy)))
        shapes.extend(format_html('<circle cx="{}" cy="{}" r="2.5" fill="{}"><title>{} {}: {} ms</title>'
                                  '</circle>', f"{x:.1f}", f"{y:.1f}", color, names.get(region_id, "?"),
                                  timezone.localtime(first + i * rollups.HOUR).strftime("%H:%M"), f"{ms:.0f}")
                      for (x, y, ms), (i, _) in zip(xy, points))
        legend.append(format_html('<span style="color: {}">■ {}</span>', color, names.get(region_id, "?")))
    return format_html(
        '<svg class="loopr-latency-chart" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="average response time per hour and region, last 24 hours">'
        '<text x="{}" y="12" font-size="10" fill="#666">{} ms</text>{}</svg><p>{}</p>',
        CHART_WIDTH, CHART_HEIGHT, CHART_WIDTH, CHART_HEIGHT, CHART_PAD, f"{slowest:.0f}",
        format_html_join("", "{}", ((shape,) for shape in shapes)), format_html_join(" ", "{}", ((l,) for l in legend)),
    )


def latest_results(monitor: Monitor) -> list[CheckResult]:
    """Newest first. The key (monitor, region, slot) orders each region's
    results, not all of them: a short index read per region, merged here
    (one query ordering every region's would sort all the monitor's results)."""
    rows: list[CheckResult] = []
    for region_id in Region.objects.order_by("pk").values_list("pk", flat=True):
        rows += monitor.results.filter(region_id=region_id).select_related("region").order_by(
            "-scheduled_at")[:LATEST_RESULTS]
    rows.sort(key=lambda r: (r.scheduled_at, r.region_id), reverse=True)
    return rows[:LATEST_RESULTS]


def incident_link(incident: Incident | None) -> str:
    if incident is None:
        return "—"
    url = reverse("admin:monitors_incident_change", args=[incident.pk])
    # format_html escapes its arguments into strings first: times are formatted here.
    started = timezone.localtime(incident.started_at).strftime("%Y-%m-%d %H:%M")
    return format_html('<a href="{}">since {} ({})</a>', url, started, format_duration(incident.duration.total_seconds()))


class SameTeamForm(TeamOwnedForm):
    """Related objects picked in the form must belong to the object's team,
    as the API insists; the admin offers those of all the user's teams."""

    same_team_fields: tuple[str, ...] = ()

    def clean(self) -> dict:
        data = super().clean()
        team = data.get("team") or (self.instance.team if self.instance.team_id else None)
        for name in self.same_team_fields:
            picked = data.get(name)
            picked = [picked] if isinstance(picked, models.Model) else picked or []
            strangers = [str(obj) for obj in picked if team is not None and obj.team_id != team.pk]
            if strangers:
                self.add_error(name, f"Not of team {team}: {', '.join(strangers)}.")
        return data


class MonitorForm(SameTeamForm):
    same_team_fields = ("channels", "escalation_policy")


class MaintenanceWindowForm(SameTeamForm):
    same_team_fields = ("monitors",)


@admin.register(Monitor)
class MonitorAdmin(AlertReachWarnings, CountedDeleteAdmin, BigTableAdmin, DeclaredAdmin, OwnedModelAdmin,
                   admin.ModelAdmin):
    form = MonitorForm
    # Down, then degraded, then the rest, each by name: monitor_attention_idx
    # serves it. By name alone (indexed) on request; the filters find the rest.
    ordering = [ATTENTION.asc(), "name", "id"]
    sortable_by = ["name"]
    list_display = ["name", "colored_status", "health", "open_incident", "uptime_24h", "uptime_30d", "p95_24h",
                    "last_24h", "alerting", "url", "interval", "last_checked_at", "paused", "team", "owner"]
    list_filter = ["status", "health", "kind", "paused", "is_flapping", "in_maintenance", "regions", "method"]
    search_fields = ["name", "url"]
    filter_horizontal = ["regions", "channels"]
    readonly_fields = [
        "colored_status", "health", "open_incident", "is_flapping", "in_maintenance", "status_changed_at", "next_check_at",
        "ping_uuid", "next_ping_due_at",
        "last_checked_at", "last_slot_at", "consecutive_failures", "consecutive_successes", "failing_since",
        "created_at", "updated_at",
    ]
    actions = ["pause_monitors", "resume_monitors"]
    # What a monitor gathers by the thousand: the delete page counts these.
    delete_counts = (CheckResult, StatusChange, Notification)
    fieldsets = [
        (None, {"fields": ["team", "owner", "name", "slug", "managed", "kind", "url", "interval", "timeout", "retries",
                           "regions", "paused"]}),
        ("HTTP", {"fields": ["method", "headers", "body", "expected_status", "keyword", "follow_redirects",
                             "tls_verify", "tls_expiry_alert_days"]}),
        ("Assertions", {"fields": ["assertions"]}),
        ("Heartbeat", {"fields": ["grace", "schedule", "timezone"]}),
        ("Alerts", {"fields": ["channels", "escalation_policy", "recovery_checks", "latency_threshold_ms", "flap_threshold",
                               "flap_window", "quorum"]}),
        ("State", {"fields": readonly_fields}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("team", "owner", "current_incident").prefetch_related("channels")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Above the form (admin/monitors/monitor/change_form.html): its state,
        # its open incident and 90 days of uptime.
        monitor = self.get_object(request, object_id)
        if monitor is not None:
            extra_context = {**(extra_context or {}), "monitor_state": {
                "status": status_badge(monitor.status),
                "since": monitor.status_changed_at,
                "last_checked_at": monitor.last_checked_at,
                "incident": incident_link(monitor.current_incident) if monitor.current_incident_id else None,
                "cause": monitor.current_incident.cause if monitor.current_incident_id else "",
                "uptime_bars": uptime_bars(monitor),
                "latency_chart": latency_chart(monitor),
                "days": UPTIME_DAYS,
                "latest_results": latest_results(monitor),
                "results_url": reverse("admin:monitors_checkresult_changelist") + f"?monitor__id__exact={monitor.pk}",
            }}
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        # The page's uptime figures, in one `rollups.summaries` call for its
        # monitors (a few queries, never one per row), added only when the
        # list is about to be shown (not for an action's confirmation).
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:
            page = list(changelist.result_list)
            figures = rollups.summaries([monitor.pk for monitor in page])
            for monitor in page:
                monitor.summary = figures[monitor.pk]
        return response

    @admin.display(description="status")
    def colored_status(self, obj: Monitor) -> str:
        return status_badge(obj.status)

    @admin.display(description="uptime 24 h")
    def uptime_24h(self, obj: Monitor) -> str:
        return percent(obj.summary.uptime_24h)

    @admin.display(description="uptime 30 d")
    def uptime_30d(self, obj: Monitor) -> str:
        return percent(obj.summary.uptime_30d)

    @admin.display(description="p95 24 h")
    def p95_24h(self, obj: Monitor) -> str:
        p95 = obj.summary.latency_p95_24h_ms
        return "—" if p95 is None else f"{p95:.0f} ms"

    @admin.display(description="last 24 h")
    def last_24h(self, obj: Monitor) -> str:
        return sparkline(obj.summary.hours)

    def get_changeform_initial_data(self, request) -> dict:
        # As in the API: a new monitor starts with its team's default channels.
        team = Team.objects.personal_for(request.user)
        defaults = list(Channel.objects.defaults_for(team).values_list("pk", flat=True))
        return {"channels": defaults, **super().get_changeform_initial_data(request)}

    @admin.display(description="current incident")
    def open_incident(self, obj: Monitor) -> str:
        return incident_link(obj.current_incident)

    @admin.display(boolean=True, description="alerting")
    def alerting(self, obj: Monitor) -> bool:
        return obj.alerting

    def save_model(self, request, obj: Monitor, form, change: bool) -> None:
        # The checkbox alone would leave the status behind ("down" while paused).
        if "paused" in form.changed_data:
            if obj.paused:
                obj.pause()
            else:
                obj.resume()
        super().save_model(request, obj, form, change)

    @admin.action(description="Pause selected monitors")
    def pause_monitors(self, request, queryset):
        self._each(request, queryset.filter(paused=False), "pause", "Paused")

    @admin.action(description="Resume selected monitors")
    def resume_monitors(self, request, queryset):
        self._each(request, queryset.filter(paused=True), "resume", "Resumed")

    def _each(self, request, queryset, method: str, verb: str) -> None:
        count = 0
        for monitor in queryset:
            with audit.change(request, monitor, method):
                getattr(monitor, method)()
                monitor.save()
            count += 1
        self.message_user(request, f"{verb} {count} monitor(s).", messages.SUCCESS)


class ResultPeriodFilter(admin.SimpleListFilter):
    """Results of the last hour unless asked otherwise. The table is
    partitioned by day and keyed by (monitor, region, slot), with no index
    on the slot alone (it would cost a fifth of a result's bytes), only a
    BRIN one: the last hour is a few block ranges read and sorted, a day a
    sort of its partition, every retained day a sort of them all (10 M
    results: tens of seconds)."""

    title = "scheduled"
    parameter_name = "period"
    DEFAULT = "1h"
    PERIODS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "all": None}

    def lookups(self, request, model_admin):
        return [("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("all", "All (slow)")]

    def value(self):
        value = super().value()
        return value if value in self.PERIODS else self.DEFAULT

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {"selected": self.value() == lookup, "display": title,
                   "query_string": changelist.get_query_string({self.parameter_name: lookup})}

    def queryset(self, request, queryset):
        period = self.PERIODS[self.value()]
        return queryset if period is None else queryset.filter(scheduled_at__gte=timezone.now() - period)


@admin.register(CheckResult)
class CheckResultAdmin(ReadOnlyAdmin, BigTableAdmin, OwnedByUserAdmin, admin.ModelAdmin):
    list_display = ["scheduled", "monitor", "region", "node", "ok", "latency_ms", "status_code", "error_kind",
                    "missed_reason", "checked"]
    list_filter = [ResultPeriodFilter, ("monitor", OwnedRelatedFieldListFilter), "region", "ok", "error_kind",
                   "missed_reason"]
    search_fields = ["monitor__name"]
    list_select_related = ["monitor", "region", "node"]
    raw_id_fields = ["monitor"]
    date_hierarchy = None  # a date drill-down would COUNT a huge table per level
    # Newest first, by the slot: an index read backwards that stops after one page.
    ordering = ["-scheduled_at"]
    sortable_by = ["scheduled"]

    fields = ["monitor", "region", "node", "scheduled", "checked", "ok", "latency_ms", "status_code", "error_kind",
              "error", "tls_expires_at", "in_maintenance", "impaired", "missed_reason", "missed_until"]
    readonly_fields = ["scheduled", "checked"]

    @admin.display(description="scheduled at", ordering="scheduled_at")
    def scheduled(self, obj: CheckResult) -> str:
        return timestamp(obj.scheduled_at)

    @admin.display(description="checked at", ordering="checked_at")
    def checked(self, obj: CheckResult) -> str:
        return timestamp(obj.checked_at)


class IncidentStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.open()
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


class StatusChangeInline(ReadOnlyInline):
    model = StatusChange
    verbose_name_plural = "timeline"
    fields = ["at", "old", "new", "cause", "region"]
    readonly_fields = fields


class NotificationInline(ReadOnlyInline):
    """The delivery log of the incident: who was told, when, and what came back."""

    model = Notification
    verbose_name_plural = "delivery log"
    fields = ["created_at", "event", "channel", "status", "attempts", "sent_at", "delivery", "last_error"]
    readonly_fields = fields
    ordering = ["created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("channel").prefetch_related("delivery_attempts")

    @admin.display(description="attempts (time, outcome, code, reply or error)")
    def delivery(self, obj: Notification) -> str:
        return format_html_join(
            "", "<div>{} {} {} {}</div>",
            ((timestamp(a.at), a.get_outcome_display().lower(),
              a.status_code or "", (a.error or a.reply)[:200])
             for a in obj.delivery_attempts.all()),
        ) or "—"


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin, BigTableAdmin, OwnedByUserAdmin, admin.ModelAdmin):
    list_display = ["monitor", "started_at", "confirmed_at", "resolved_at", "duration", "short_cause"]
    list_filter = [IncidentStateFilter, "cause_kind"]
    search_fields = ["monitor__name", "cause"]
    list_select_related = ["monitor"]
    readonly_fields = ["monitor", "started_at", "confirmed_at", "resolved_at", "duration", "cause_kind", "cause",
                       "regions", "acknowledged_at", "acknowledged_by", "acknowledged_via", "acknowledgement_note"]
    fields = readonly_fields
    inlines = [StatusChangeInline, NotificationInline]
    actions = ["acknowledge"]

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in {"monitor__id__exact", "monitor"} or super().lookup_allowed(lookup, value, request)

    @admin.action(description="Acknowledge (stops reminders and escalation)")
    def acknowledge(self, request, queryset):
        done = 0
        for incident in queryset:
            try:
                acknowledge(incident.pk, by=request.user.get_username(), via=AcknowledgedVia.ADMIN, request=request)
                done += 1
            except NotAcknowledgeable:
                self.message_user(request, f"{incident}: resolved or acknowledged already.", messages.WARNING)
        if done:
            self.message_user(request, f"Acknowledged {done} incident(s).", messages.SUCCESS)

    @admin.display(description="duration")
    def duration(self, obj: Incident) -> str:
        text = format_duration(obj.duration.total_seconds())
        return f"{text} (ongoing)" if obj.is_open else text

    @admin.display(description="cause")
    def short_cause(self, obj: Incident) -> str:
        return obj.cause[:120]


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(DeclaredAdmin, OwnedModelAdmin, admin.ModelAdmin):
    form = MaintenanceWindowForm
    list_display = ["name", "kind", "schedule", "active", "team", "owner"]
    list_filter = ["kind"]
    search_fields = ["name", "monitors__name"]
    filter_horizontal = ["monitors"]
    list_select_related = ["team", "owner"]
    readonly_fields = ["created_at"]
    fieldsets = [
        (None, {"fields": ["team", "owner", "name", "slug", "managed", "monitors", "kind", "timezone"]}),
        ("One-off", {"fields": ["starts_at", "ends_at"]}),
        ("Weekly or cron", {"fields": ["weekdays", "start_time", "cron", "duration_minutes"]}),
        (None, {"fields": ["created_at"]}),
    ]

    @admin.display(description="schedule")
    def schedule(self, obj: MaintenanceWindow) -> str:
        if obj.kind == MaintenanceKind.ONCE:
            if not (obj.starts_at and obj.ends_at):
                return ""
            return f"{obj.starts_at:%Y-%m-%d %H:%M} – {obj.ends_at:%Y-%m-%d %H:%M} UTC"
        if obj.kind == MaintenanceKind.WEEKLY:
            start = f"days {obj.weekdays} at {obj.start_time:%H:%M}" if obj.start_time else ""
        else:
            start = f"cron {obj.cron}"
        return f"{start} for {obj.duration_minutes} min ({obj.timezone})"

    @admin.display(boolean=True, description="active now")
    def active(self, obj: MaintenanceWindow) -> bool:
        return obj.active_at(timezone.now())
