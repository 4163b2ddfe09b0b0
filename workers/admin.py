from django.contrib import admin

from .models import Region, WorkerNode


class WorkerNodeInline(admin.TabularInline):
    model = WorkerNode
    extra = 0
    fields = ["name", "version", "concurrency", "started_at", "last_heartbeat_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["name", "label", "live", "last_seen_at", "created_at"]
    search_fields = ["name", "label"]
    readonly_fields = ["last_seen_at", "created_at"]
    inlines = [WorkerNodeInline]

    @admin.display(boolean=True, description="live")
    def live(self, obj: Region) -> bool:
        return obj.is_live


@admin.register(WorkerNode)
class WorkerNodeAdmin(admin.ModelAdmin):
    list_display = ["name", "region", "online", "version", "concurrency", "last_heartbeat_at"]
    list_filter = ["region"]
    readonly_fields = ["name", "region", "version", "concurrency", "started_at", "last_heartbeat_at"]

    @admin.display(boolean=True, description="online")
    def online(self, obj: WorkerNode) -> bool:
        return obj.is_online

    def has_add_permission(self, request):
        return False
