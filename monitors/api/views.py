from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta

from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import get_object_or_404
from rest_framework.pagination import BasePagination, CursorPagination
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from loopr.api import (
    IdFilter,
    JSONRenderer,
    StrictBooleanFilter,
    TeamScoped,
    UtcDateTimeFilter,
    WarnsWhenManaged,
    page_parameters,
    query_int,
)
from loopr.schema import error_response

from ..acknowledgement import NotAcknowledgeable, acknowledge
from ..choices import AcknowledgedVia, MonitorKind, MonitorStatus
from ..models import CheckResult, Incident, MaintenanceWindow, Monitor, Ping
from ..regions import Region
from .serializers import (
    MAX_BULK_CREATE,
    AcknowledgementSerializer,
    BadgeTokenSerializer,
    CheckResultSerializer,
    PingSerializer,
    IncidentDetailSerializer,
    IncidentSerializer,
    MaintenanceWindowSerializer,
    MonitorSerializer,
)
from .uptime import SeriesCSVRenderer, SeriesQuery, SeriesSerializer, UptimeQuery, UptimeSerializer, series_of, uptime


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

    def get_page_size(self, request) -> int:
        return query_int(request, self.page_size_query_param, self.page_size, self.max_page_size)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [{"name": self.cursor_query_param, "required": False, "in": "query", "schema": {"type": "string"},
                 "description": "The position after which the page starts (from `next`); a wrong one is a 404."},
                *page_parameters("Pings per page; default 100, at most 1,000 (a larger size gets that many).")]


class ResultPagination(BasePagination):
    """Newest first, by (scheduled_at, region), with a cursor: the position
    after the page's last result (OFFSET on a table this size gets slower with
    every page, and new results would shift pages under the reader).

    The natural key orders a monitor's results by region, then time, so one
    region's newest results are an index range in each day's partition, merged
    (a few rows read); across regions they are not. So each region is read on
    its own, newest first from the cursor, and the pages merged here.

    Unbounded in time, such a read plans and opens every day's partition (90
    of them: ~10 ms of planning and ~4 ms of execution per region), so an
    unfiltered page reads the last day first, then the last week, and only
    then everything: one that the newest partitions fill touches only those.
    (A filtered one, failures say, would mostly need all three reads.)"""

    page_size = 100
    max_page_size = 1000
    SPANS = (timedelta(days=1), timedelta(days=8), None)

    def paginate_queryset(self, queryset, request, view=None) -> list:
        self.request = request
        size = self._page_size(request)
        after = self._decode(request.query_params.get("cursor"))
        newest = after[0] if after is not None else timezone.now()
        filtered = bool(request.query_params.keys() - {"cursor", "page_size", "format"})
        rows = []
        for region_id in Region.objects.order_by("pk").values_list("pk", flat=True):
            mine = queryset.filter(region_id=region_id)
            if after is not None:
                at, after_region = after
                # Strictly after the cursor in (time, region) descending order.
                mine = mine.filter(scheduled_at__lte=at) if region_id < after_region else mine.filter(
                    scheduled_at__lt=at)
            for span in self.SPANS if not filtered else (None,):
                recent = mine if span is None else mine.filter(scheduled_at__gte=newest - span)
                found = list(recent.order_by("-scheduled_at")[: size + 1])
                if len(found) > size:  # the newest size + 1 are all in the span
                    break
            rows += found
        rows.sort(key=lambda r: (r.scheduled_at, r.region_id), reverse=True)
        page, self.has_next = rows[:size], len(rows) > size
        self.last = page[-1] if page else None
        return page

    def get_paginated_response(self, data) -> Response:
        next_url = None
        if self.has_next and self.last is not None:
            cursor = base64.urlsafe_b64encode(
                f"{self.last.scheduled_at.isoformat()}|{self.last.region_id}".encode()).decode()
            next_url = replace_query_param(self.request.build_absolute_uri(), "cursor", cursor)
        return Response({"next": next_url, "previous": None, "results": data})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {"type": "object", "required": ["results"], "properties": {
            "next": {"type": "string", "nullable": True, "format": "uri"},
            "previous": {"type": "string", "nullable": True, "format": "uri", "description": "Always null."},
            "results": schema}}

    def get_schema_operation_parameters(self, view) -> list:
        return [{"name": "cursor", "required": False, "in": "query", "schema": {"type": "string"},
                 "description": "The position after which the page starts (from `next`); a wrong one is a 404."},
                *page_parameters("Results per page; default 100, at most 1,000 (a larger size gets that many).")]

    def _page_size(self, request) -> int:
        return query_int(request, "page_size", self.page_size, self.max_page_size)

    @staticmethod
    def _decode(cursor: str | None) -> tuple[datetime, int] | None:
        if not cursor:
            return None
        try:
            at, region = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
            parsed = datetime.fromisoformat(at)
            if parsed.tzinfo is None:
                raise ValueError("naive time")
            return parsed, int(region)
        except (ValueError, UnicodeError, binascii.Error) as exc:
            raise NotFound("Invalid cursor") from exc


class MonitorViewSet(WarnsWhenManaged, TeamScoped, viewsets.ModelViewSet):
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


    @extend_schema(request=None, responses=BadgeTokenSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-badge-token", filterset_class=None,
            pagination_class=None)
    def rotate_badge_token(self, request, pk=None):
        """A new badge token; badges by the old one are a 404 from now on."""
        monitor = self.get_object()
        return Response({"badge_token": monitor.rotate_badge_token()})

    @extend_schema(
        responses=PingSerializer(many=True),
        parameters=[
            OpenApiParameter("id", int, OpenApiParameter.PATH, description="The heartbeat's id."),
        ],
    )
    # A heartbeat's pings, newest first, with what each carried (its body included).
    @action(detail=True, methods=["get"], queryset=Ping.objects.all(), pagination_class=PingPagination,
            filterset_class=None, serializer_class=PingSerializer)
    def pings(self, request, pk=None):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(PingSerializer(page, many=True).data)


class IncidentViewSet(TeamScoped, viewsets.ReadOnlyModelViewSet):
    queryset = Incident.objects.all()
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilter

    def get_serializer_class(self):
        # The timeline can be long (a flapping monitor); only one incident carries it.
        if self.action == "acknowledge":
            return AcknowledgementSerializer
        return IncidentDetailSerializer if self.action == "retrieve" else IncidentSerializer

    @extend_schema(request=AcknowledgementSerializer, responses={
        200: IncidentSerializer, 409: error_response("The incident is resolved, or acknowledged already.")})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """Someone is on it: reminders and escalation stop, and the channels
        that were alerted are told. 409 if it is resolved or acknowledged already."""
        incident = self.get_object()
        serializer = AcknowledgementSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            incident = acknowledge(incident.pk, by=request.user.get_username(), via=AcknowledgedVia.API,
                                   note=serializer.validated_data.get("note", ""), request=request)
        except NotAcknowledgeable:
            incident.refresh_from_db()
            why = "resolved" if not incident.is_open else "acknowledged already"
            return Response({"detail": f"The incident is {why}."}, status=status.HTTP_409_CONFLICT)
        return Response(IncidentSerializer(incident, context=self.get_serializer_context()).data)


class MaintenanceWindowViewSet(WarnsWhenManaged, TeamScoped, viewsets.ModelViewSet):
    queryset = MaintenanceWindow.objects.prefetch_related("monitors")
    serializer_class = MaintenanceWindowSerializer
    filterset_class = MaintenanceWindowFilter
