from __future__ import annotations

from django.contrib import admin, messages

from .models import CheckResult, Monitor


@admin.register(Monitor)
class MonitorAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "url", "interval", "last_checked_at", "paused", "owner"]
    list_filter = ["status", "paused", "regions", "method"]
    search_fields = ["name", "url"]
    filter_horizontal = ["regions"]
    readonly_fields = [
        "status", "status_changed_at", "next_check_at", "last_checked_at", "last_slot_at",
        "consecutive_failures", "created_at", "updated_at",
    ]
    actions = ["pause_monitors", "resume_monitors"]
    fieldsets = [
        (None, {"fields": ["owner", "name", "url", "interval", "timeout", "retries", "regions", "paused"]}),
        ("HTTP", {"fields": ["method", "headers", "body", "expected_status", "keyword", "follow_redirects"]}),
        ("State", {"fields": readonly_fields}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner")

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
class CheckResultAdmin(admin.ModelAdmin):
    list_display = ["scheduled_at", "monitor", "region", "node", "ok", "latency_ms", "status_code", "error_kind"]
    list_filter = ["ok", "region", "error_kind"]
    search_fields = ["monitor__name"]
    list_select_related = ["monitor", "region"]
    raw_id_fields = ["monitor"]
    date_hierarchy = None  # a date drill-down would COUNT a huge table per level
    show_full_result_count = False

    def lookup_allowed(self, lookup, value, request=None):
        # ?monitor__id__exact=N (linked from a monitor's page) without a
        # list_filter that would render every monitor as a choice.
        return lookup in {"monitor__id__exact", "monitor"} or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
