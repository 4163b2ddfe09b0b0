from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from loopr.admin import OwnedByUserAdmin, OwnedModelAdmin

from .models import Component, StatusPage, StatusReport, StatusReportUpdate


class ComponentInlineFormSet(forms.BaseInlineFormSet):
    """Only monitors of the page's team, as the API insists (the admin offers those of all the user's teams)."""

    def clean(self) -> None:
        super().clean()
        team_id = self.instance.team_id
        for form in self.forms:
            monitor = form.cleaned_data.get("monitor") if hasattr(form, "cleaned_data") else None
            if team_id is not None and monitor is not None and monitor.team_id != team_id:
                form.add_error("monitor", f"Not of the page's team ({self.instance.team}).")


class ComponentInline(admin.TabularInline):
    model = Component
    formset = ComponentInlineFormSet
    fields = ["position", "monitor", "name", "group", "show_error_message"]
    autocomplete_fields = ["monitor"]
    extra = 1

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        monitors = formset.form.base_fields["monitor"]
        monitors.queryset = (monitors.queryset.filter(team=obj.team) if obj is not None
                             else monitors.queryset.visible_to(request.user))
        return formset


@admin.register(StatusPage)
class StatusPageAdmin(OwnedModelAdmin, admin.ModelAdmin):
    list_display = ["name", "slug", "public", "view", "team", "owner"]
    list_filter = ["public"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    list_select_related = ["team", "owner"]
    fieldsets = [(None, {"fields": ["team", "owner", "name", "slug", "public", "description", "created_at",
                                    "updated_at"]})]
    inlines = [ComponentInline]

    @admin.display(description="page")
    def view(self, obj: StatusPage) -> str:
        return format_html('<a href="{}">{}</a>', reverse("status-page", args=[obj.slug]),
                           "view" if obj.public else "preview")

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        form.instance.touch()


class UpdateInline(admin.TabularInline):
    model = StatusReportUpdate
    fields = ["at", "status", "message"]
    extra = 1


@admin.register(StatusReport)
class StatusReportAdmin(OwnedByUserAdmin, admin.ModelAdmin):
    list_display = ["title", "page", "status", "created_at", "resolved_at"]
    list_filter = ["status"]
    search_fields = ["title"]
    filter_horizontal = ["monitors"]
    readonly_fields = ["status", "resolved_at"]
    fields = ["page", "title", "monitors", "status", "created_at", "resolved_at"]
    inlines = [UpdateInline]

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        report = form.instance
        latest = report.updates.order_by("-at", "-pk").first()
        if latest is not None:
            report.follow(latest)  # as through the API
        else:
            report.page.touch()
