from rest_framework import serializers

from ..models import Region


class RegionSerializer(serializers.ModelSerializer):
    live = serializers.BooleanField(source="is_live", read_only=True,
                                    help_text="Whether a probe worker of the region sent a heartbeat lately.")
    queue = serializers.CharField(read_only=True)

    class Meta:
        model = Region
        fields = ["name", "label", "live", "last_seen_at", "queue"]
