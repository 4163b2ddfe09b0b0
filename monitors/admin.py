from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

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
from teams.models import Team

from .acknowledgement import NotAcknowledgeable, acknowledge
from . import rollups
from .choices import AcknowledgedVia, MaintenanceKind, MonitorStatus, Resolution
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
    if uptime is None:
        return NO_DATA_COLOR
    if uptime >= 100:
        return MonitorStatus.UP.color
    return MonitorStatus.DEGRADED.color if uptime >= 99 else MonitorStatus.DOWN.color


def uptime_bars(monitor: Monitor, now=None) -> str:
    """The last 90 (UTC) days' uptime as an inline SVG, a bar a day (grey for
    a day with no data), from the day rollups: a few queries, no raw scan
    but today's results since the last roll-up."""
    now = now or timezone.now()
    first = rollups.floor_to(now, rollups.DAY) - (UPTIME_DAYS - 1) * rollups.DAY
    buckets = rollups.series(monitor.pk, Resolution.DAY, first, rollups.ceil_to(now, rollups.DAY))
    bars = []
    for index in range(UPTIME_DAYS):
        day = first + index * rollups.DAY
        stats = buckets.get((None, day))
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
                    "alerting", "url", "interval", "last_checked_at", "paused", "team", "owner"]
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
                "days": UPTIME_DAYS,
                # Newest first along the results' key (monitor, slot, region): one short index read.
                "latest_results": monitor.results.select_related("region").order_by("-scheduled_at")[:LATEST_RESULTS],
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
            getattr(monitor, method)()
            monitor.save()
            count += 1
        self.message_user(request, f"{verb} {count} monitor(s).", messages.SUCCESS)


@admin.register(CheckResult)
class CheckResultAdmin(ReadOnlyAdmin, BigTableAdmin, OwnedByUserAdmin, admin.ModelAdmin):
    list_display = ["scheduled", "monitor", "region", "node", "ok", "latency_ms", "status_code", "error_kind",
                    "missed_reason", "checked"]
    list_filter = [("monitor", OwnedRelatedFieldListFilter), "region", "ok", "error_kind", "missed_reason"]
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
                acknowledge(incident.pk, by=request.user.get_username(), via=AcknowledgedVia.ADMIN)
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
