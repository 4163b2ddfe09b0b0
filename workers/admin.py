from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from loopr.admin import ReadOnlyAdmin, ReadOnlyInline

from . import services
from .choices import SERVING_STATES, NodeState
from .models import NodeToken, Region, Rejection, WorkerNode

STATE_COLOURS = {
    NodeState.ONLINE: "#2e7d32", NodeState.IMPAIRED: "#ef6c00", NodeState.DRAINING: "#1565c0",
    NodeState.OFFLINE: "#9e9e9e", NodeState.REVOKED: "#c62828",
}


def state_badge(state: str, label: str) -> str:
    return format_html('<b style="color:{}">●</b> {}', STATE_COLOURS.get(state, "#000"), label)


class WorkerNodeInline(ReadOnlyInline):
    model = WorkerNode
    fields = ["name", "state", "version", "checks_done", "failures", "mean_lag_ms", "last_heartbeat_at"]
    readonly_fields = fields
    show_change_link = True


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["name", "label", "live", "online_nodes", "last_seen_at", "created_at"]
    search_fields = ["name", "label"]
    readonly_fields = ["last_seen_at", "created_at"]
    inlines = [WorkerNodeInline]

    @admin.display(boolean=True, description="live")
    def live(self, obj: Region) -> bool:
        return obj.is_live

    @admin.display(description="online nodes")
    def online_nodes(self, obj: Region) -> str:
        nodes = list(obj.nodes.all())
        return f"{sum(n.is_online for n in nodes)} / {len(nodes)}"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("nodes")


@admin.register(WorkerNode)
class WorkerNodeAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ["name", "region", "state_display", "version", "checks_done", "failures", "mean_lag_ms",
                    "rejected_results", "last_heartbeat_at"]
    list_filter = ["state", "region"]
    search_fields = ["name"]
    readonly_fields = [f.name for f in WorkerNode._meta.fields]
    actions = ["drain", "undrain"]

    @admin.display(description="state", ordering="state")
    def state_display(self, obj: WorkerNode) -> str:
        # A serving state whose heartbeats stopped shows what it amounts to.
        shown = obj.state if obj.is_online or obj.state not in SERVING_STATES else NodeState.OFFLINE
        return state_badge(shown, WorkerNode(state=shown).get_state_display())

    @admin.action(description="Drain: finish what they hold, take nothing new")
    def drain(self, request, queryset):
        for node in queryset.select_related("region"):
            services.drain(node)
        self.message_user(request, f"Draining {queryset.count()} node(s).", messages.SUCCESS)

    @admin.action(description="Resume taking work")
    def undrain(self, request, queryset):
        for node in queryset.filter(state=NodeState.DRAINING).select_related("region"):
            services.undrain(node)
        self.message_user(request, "Resumed.", messages.SUCCESS)


@admin.register(NodeToken)
class NodeTokenAdmin(admin.ModelAdmin):
    list_display = ["hint", "region", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["region", ("revoked_at", admin.EmptyFieldListFilter)]
    fields = ["region", "label", "hint", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["hint", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, plaintext = NodeToken.issue(obj.region.name, obj.label)
        obj.pk = token.pk
        self.message_user(
            request,
            f"Token for {obj.region}: {plaintext} — copy it now, it is not shown again "
            f"(give it to the node as LOOPR_NODE_TOKEN).",
            messages.WARNING,
        )

    @admin.action(description="Revoke: refuse everything these tokens' nodes report")
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True):
            token.revoke()
        self.message_user(request, "Revoked.", messages.SUCCESS)


@admin.register(Rejection)
class RejectionAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ["node", "region", "reason", "count", "first_at", "last_at"]
    list_filter = ["region", "reason"]
    readonly_fields = ["node", "region", "reason", "count", "first_at", "last_at"]
