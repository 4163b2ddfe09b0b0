from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination

from ..choices import MonitorStatus
from ..models import CheckResult, Monitor
from .serializers import CheckResultSerializer, MonitorSerializer


class MonitorFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=MonitorStatus.choices)
    paused = filters.BooleanFilter()
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Monitor
        fields = ["status", "paused", "name"]


class ResultFilter(filters.FilterSet):
    region = filters.CharFilter(field_name="region__name")
    since = filters.IsoDateTimeFilter(field_name="scheduled_at", lookup_expr="gte")
    until = filters.IsoDateTimeFilter(field_name="scheduled_at", lookup_expr="lt")

    class Meta:
        model = CheckResult
        fields = ["ok", "error_kind", "region", "since", "until"]


class ResultPagination(CursorPagination):
    # Cursor, not page numbers: OFFSET on a table this size gets slower with
    # every page, and new results would shift pages under the reader.
    ordering = "-scheduled_at"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class MonitorViewSet(viewsets.ModelViewSet):
    serializer_class = MonitorSerializer
    filterset_class = MonitorFilter

    def get_queryset(self):
        return Monitor.objects.owned_by(self.request.user).prefetch_related("regions")

    def perform_create(self, serializer: MonitorSerializer) -> None:
        serializer.save(owner=self.request.user)

    @extend_schema(
        responses=CheckResultSerializer(many=True),
        parameters=[OpenApiParameter("page_size", int, description="Results per page, up to 1,000.")],
    )
    @action(detail=True, methods=["get"], pagination_class=ResultPagination,
            filterset_class=ResultFilter, serializer_class=CheckResultSerializer)
    def results(self, request, pk=None):
        monitor = self.get_object()
        queryset = self.filter_queryset(monitor.results.select_related("region"))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(CheckResultSerializer(page, many=True).data)
