from __future__ import annotations

from django.db import transaction
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from loopr.api import IdFilter, OwnedByUser, StrictBooleanFilter
from teams import audit

from ..choices import ReportStatus
from ..models import StatusPage, StatusReport
from .serializers import StatusPageSerializer, StatusReportSerializer, StatusReportUpdateSerializer


class StatusPageFilter(filters.FilterSet):
    public = StrictBooleanFilter()

    class Meta:
        model = StatusPage
        fields = ["public"]


class StatusReportFilter(filters.FilterSet):
    # Not `page`: that is the number of a page of the list.
    status_page = IdFilter(field_name="page_id", help_text="Id of a status page: its notices.")
    status = filters.ChoiceFilter(choices=ReportStatus.choices)

    class Meta:
        model = StatusReport
        fields = ["status_page", "status"]


class StatusPageViewSet(OwnedByUser, viewsets.ModelViewSet):
    queryset = StatusPage.objects.prefetch_related("components")
    serializer_class = StatusPageSerializer
    filterset_class = StatusPageFilter


class StatusReportViewSet(OwnedByUser, viewsets.ModelViewSet):
    queryset = StatusReport.objects.select_related("page").prefetch_related("updates", "monitors")
    serializer_class = StatusReportSerializer
    filterset_class = StatusReportFilter

    def perform_create(self, serializer) -> None:
        with transaction.atomic(savepoint=False):
            # Owned through its page, which must be of the caller's teams.
            audit.record(self.request, "create", serializer.save())

    @extend_schema(request=StatusReportUpdateSerializer, responses=StatusReportSerializer)
    @action(detail=True, methods=["post"], serializer_class=StatusReportUpdateSerializer)
    def updates(self, request, pk=None):
        """Post a timestamped update; the notice takes its status (resolved ends it)."""
        report = self.get_object()
        serializer = StatusReportUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with audit.change(request, report):
            report.post(serializer.validated_data["status"], serializer.validated_data["message"])
        report = self.get_queryset().get(pk=report.pk)
        return Response(StatusReportSerializer(report, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)
