from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response

from loopr.api import IdFilter, OwnedByUser, UtcDateTimeFilter

from ..choices import MonitorStatus
from ..models import CheckResult, Incident, MaintenanceWindow, Monitor
from .uptime import SeriesCSVRenderer, SeriesQuery, SeriesSerializer, UptimeQuery, UptimeSerializer, series_of, uptime
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
    # The cursor is the time; the region orders one slot's results (the
    # natural key), so a page boundary inside a slot loses or repeats none.
    ordering = ("-scheduled_at", "-region_id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class MonitorViewSet(OwnedByUser, viewsets.ModelViewSet):
    queryset = Monitor.objects.select_related("current_incident").prefetch_related("regions", "channels")
    serializer_class = MonitorSerializer
    filterset_class = MonitorFilter

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "results" and self.lookup_field in self.kwargs:  # not so in schema generation
            # One monitor's results: another user's monitor is a 404, not an empty list.
            monitor = get_object_or_404(self.visible(Monitor.objects.all()), pk=self.kwargs[self.lookup_field])
            queryset = queryset.filter(monitor=monitor)
        return queryset

    @extend_schema(
        responses=CheckResultSerializer(many=True),
        parameters=[
            OpenApiParameter("id", int, OpenApiParameter.PATH, description="The monitor's id."),
            OpenApiParameter("page_size", int, description="Results per page, up to 1,000."),
        ],
    )
    # Its own queryset, so that its filters (and the browsable API's filter
    # form) meet the model they were written for.
    @action(detail=True, methods=["get"], queryset=CheckResult.objects.select_related("region", "node"),
            pagination_class=ResultPagination, filterset_class=ResultFilter, serializer_class=CheckResultSerializer)
    def results(self, request, pk=None):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(CheckResultSerializer(page, many=True).data)

    @extend_schema(parameters=[UptimeQuery], responses=UptimeSerializer)
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def uptime(self, request, pk=None):
        """Uptime, downtime, checks and latency percentiles of one monitor over
        a window ending now or a since/until range, overall and per region."""
        monitor = self.get_object()
        query = UptimeQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        return Response(UptimeSerializer(uptime(monitor, params["since"], params["until"], params.get("region"))).data)

    @extend_schema(parameters=[SeriesQuery], responses=SeriesSerializer)
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None,
            renderer_classes=[JSONRenderer, BrowsableAPIRenderer, SeriesCSVRenderer])
    def series(self, request, pk=None, format=None):
        """One monitor's buckets (minute, hour or day) over a range, oldest
        first; `?format=csv` (or `series.csv`, the router's format suffix) for spreadsheets."""
        monitor = self.get_object()
        query = SeriesQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        answer = series_of(monitor, params["resolution"], params["since"], params["until"], params.get("region"))
        return Response(answer)


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
