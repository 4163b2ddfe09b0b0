from rest_framework import viewsets

from ..models import Region
from .serializers import RegionSerializer


class RegionViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Region.objects.all()
    serializer_class = RegionSerializer
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"  # what a region name may hold; anything else is a 404
    pagination_class = None
