from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.generics import get_object_or_404
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer

from loopr.api import IdFilter, OwnedByUser, StrictBooleanFilter, UtcDateTimeFilter

from ..acknowledgement import NotAcknowledgeable, acknowledge
from ..choices import AcknowledgedVia, MonitorKind, MonitorStatus
from ..models import CheckResult, Incident, MaintenanceWindow, Monitor, Ping
from .uptime import SeriesCSVRenderer, SeriesQuery, SeriesSerializer, UptimeQuery, UptimeSerializer, series_of, uptime
from .serializers import (
    MAX_BULK_CREATE,
    AcknowledgementSerializer,
    CheckResultSerializer,
    PingSerializer,
    IncidentDetailSerializer,
    IncidentSerializer,
    MaintenanceWindowSerializer,
    MonitorSerializer,
)


class MonitorFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=MonitorStatus.choices)
    kind = filters.ChoiceFilter(choices=MonitorKind.choices)
    paused = StrictBooleanFilter()
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Monitor
        fields = ["status", "kind", "paused", "name"]


class IncidentFilter(filters.FilterSet):
    monitor = IdFilter(field_name="monitor_id")
    open = StrictBooleanFilter(field_name="resolved_at", lookup_expr="isnull",
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
    ok = StrictBooleanFilter()
    region = filters.CharFilter(field_name="region__name")
    since = UtcDateTimeFilter(field_name="scheduled_at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="scheduled_at", lookup_expr="lt")

    class Meta:
        model = CheckResult
        fields = ["ok", "error_kind", "region", "since", "until"]


class PingPagination(CursorPagination):
    ordering = ("-at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


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
    # Regions and channels: a page reads them all in one query each (MonitorListSerializer).
    queryset = Monitor.objects.select_related("current_incident")
    serializer_class = MonitorSerializer
    filterset_class = MonitorFilter

    def get_serializer(self, *args, **kwargs):
        # A list posted to the list endpoint creates them all, as NetBox's API does.
        if self.action == "create" and isinstance(kwargs.get("data"), list):
            kwargs["many"] = True
        return super().get_serializer(*args, **kwargs)

    @extend_schema(description=(
        f"Create a monitor; or post a list of up to {MAX_BULK_CREATE:,} monitors to create them all at once. "
        "Each item is validated as if posted alone; if any is refused, none is created, and the 400 maps the position of each "
        'refused item (from 0) to its errors by field: {"3": {"url": ["…"]}}.'
    ))
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action in ("results", "pings") and self.lookup_field in self.kwargs:  # not so in schema generation
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
        return Response(SeriesSerializer(answer).data)


    @extend_schema(
        responses=PingSerializer(many=True),
        parameters=[
            OpenApiParameter("id", int, OpenApiParameter.PATH, description="The heartbeat's id."),
            OpenApiParameter("page_size", int, description="Pings per page, up to 1,000."),
        ],
    )
    # A heartbeat's pings, newest first, with what each carried (its body included).
    @action(detail=True, methods=["get"], queryset=Ping.objects.all(), pagination_class=PingPagination,
            filterset_class=None, serializer_class=PingSerializer)
    def pings(self, request, pk=None):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(PingSerializer(page, many=True).data)


class IncidentViewSet(OwnedByUser, viewsets.ReadOnlyModelViewSet):
    queryset = Incident.objects.all()
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilter

    def get_serializer_class(self):
        # The timeline can be long (a flapping monitor); only one incident carries it.
        if self.action == "acknowledge":
            return AcknowledgementSerializer
        return IncidentDetailSerializer if self.action == "retrieve" else IncidentSerializer

    @extend_schema(request=AcknowledgementSerializer, responses=IncidentSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """Someone is on it: reminders and escalation stop, and the channels
        that were alerted are told. 409 if it is resolved or acknowledged already."""
        incident = self.get_object()
        serializer = AcknowledgementSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            incident = acknowledge(incident.pk, by=request.user.get_username(), via=AcknowledgedVia.API,
                                   note=serializer.validated_data.get("note", ""))
        except NotAcknowledgeable:
            incident.refresh_from_db()
            why = "resolved" if not incident.is_open else "acknowledged already"
            return Response({"detail": f"The incident is {why}."}, status=status.HTTP_409_CONFLICT)
        return Response(IncidentSerializer(incident, context=self.get_serializer_context()).data)


class MaintenanceWindowViewSet(OwnedByUser, viewsets.ModelViewSet):
    queryset = MaintenanceWindow.objects.prefetch_related("monitors")
    serializer_class = MaintenanceWindowSerializer
    filterset_class = MaintenanceWindowFilter
