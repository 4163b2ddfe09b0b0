from rest_framework import permissions, viewsets

from ..models import Region, WorkerNode
from .serializers import RegionSerializer, WorkerNodeSerializer


class RegionViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Region.objects.all()
    serializer_class = RegionSerializer
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"  # what a region name may hold; anything else is a 404
    pagination_class = None


class WorkerNodeViewSet(viewsets.ReadOnlyModelViewSet):
    """Probe nodes: staff only (node names and counters describe the fleet)."""

    queryset = WorkerNode.objects.select_related("region")
    serializer_class = WorkerNodeSerializer
    permission_classes = [permissions.IsAdminUser]
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_.@]+"  # Celery node names; anything else is a 404
    filterset_fields = ["state", "region__name"]
