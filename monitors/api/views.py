from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.pagination import CursorPagination

from loopr.api import IdFilter, OwnedByUser, UtcDateTimeFilter

from ..choices import MonitorStatus
from ..models import CheckResult, Incident, MaintenanceWindow, Monitor
from .serializers import (
    CheckResultSerializer,
    IncidentDetailSerializer,
    IncidentSerializer,
    MaintenanceWindowSerializer,
    MonitorSerializer,
)


class MonitorFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=MonitorStatus.choices)
    paused = filters.BooleanFilter()
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Monitor
        fields = ["status", "paused", "name"]


class IncidentFilter(filters.FilterSet):
    monitor = IdFilter(field_name="monitor_id")
    open = filters.BooleanFilter(field_name="resolved_at", lookup_expr="isnull",
                                 help_text="true: still open; false: resolved.")
    since = UtcDateTimeFilter(field_name="started_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = Incident
        fields = ["monitor", "open", "since", "until"]


class MaintenanceWindowFilter(filters.FilterSet):
    monitor = IdFilter(field_name="monitors")

    class Meta:
        model = MaintenanceWindow
        fields = ["monitor", "kind"]


class ResultFilter(filters.FilterSet):
    region = filters.CharFilter(field_name="region__name")
    since = UtcDateTimeFilter(field_name="scheduled_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="scheduled_at", lookup_expr="lt")

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
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user, no id
            return (CheckResult if self.action == "results" else Monitor).objects.none()
        monitors = Monitor.objects.owned_by(self.request.user)
        if self.action == "results":
            # What the action lists, so that its filters (and the browsable
            # API's filter form) meet the model they were written for.
            monitor = get_object_or_404(monitors, pk=self.kwargs[self.lookup_field])
            return monitor.results.select_related("region")
        return monitors.select_related("current_incident").prefetch_related("regions", "channels")

    def perform_create(self, serializer: MonitorSerializer) -> None:
        serializer.save(owner=self.request.user)

    @extend_schema(
        responses=CheckResultSerializer(many=True),
        parameters=[
            OpenApiParameter("id", int, OpenApiParameter.PATH, description="The monitor's id."),
            OpenApiParameter("page_size", int, description="Results per page, up to 1,000."),
        ],
    )
    @action(detail=True, methods=["get"], pagination_class=ResultPagination,
            filterset_class=ResultFilter, serializer_class=CheckResultSerializer)
    def results(self, request, pk=None):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(CheckResultSerializer(page, many=True).data)


class IncidentViewSet(OwnedByUser, viewsets.ReadOnlyModelViewSet):
    queryset = Incident.objects.all()
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilter

    def get_serializer_class(self):
        # The timeline can be long (a flapping monitor); only one incident carries it.
        return IncidentDetailSerializer if self.action == "retrieve" else IncidentSerializer


class MaintenanceWindowViewSet(OwnedByUser, viewsets.ModelViewSet):
    queryset = MaintenanceWindow.objects.prefetch_related("monitors")
    serializer_class = MaintenanceWindowSerializer
    filterset_class = MaintenanceWindowFilter
