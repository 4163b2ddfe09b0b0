from rest_framework import serializers

from ..models import Region, WorkerNode


class RegionSerializer(serializers.ModelSerializer):
    live = serializers.BooleanField(source="is_live", read_only=True,
                                    help_text="Whether a probe worker of the region sent a heartbeat lately.")
    queue = serializers.CharField(read_only=True)

    class Meta:
        model = Region
        fields = ["name", "label", "live", "last_seen_at", "queue"]


class WorkerNodeSerializer(serializers.ModelSerializer):
    region = serializers.SlugRelatedField(slug_field="name", read_only=True)
    online = serializers.BooleanField(source="is_online", read_only=True)

    class Meta:
        model = WorkerNode
        fields = [
            "name", "region", "state", "online", "version", "concurrency", "started_at", "last_heartbeat_at",
            "checks_done", "failures", "mean_lag_ms", "last_error", "canary_error", "rejected_results",
        ]
        read_only_fields = fields
