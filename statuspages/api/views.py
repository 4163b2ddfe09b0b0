from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from loopr.api import OwnedByUser

from ..models import StatusPage, StatusReport
from .serializers import StatusPageSerializer, StatusReportSerializer, StatusReportUpdateSerializer


class StatusPageViewSet(OwnedByUser, viewsets.ModelViewSet):
    queryset = StatusPage.objects.prefetch_related("components")
    serializer_class = StatusPageSerializer
    filterset_fields = ["public"]


class StatusReportViewSet(OwnedByUser, viewsets.ModelViewSet):
    queryset = StatusReport.objects.select_related("page").prefetch_related("updates", "monitors")
    serializer_class = StatusReportSerializer
    filterset_fields = ["page", "status"]

    def perform_create(self, serializer) -> None:
        serializer.save()  # owned through its page, which must be the caller's

    @extend_schema(request=StatusReportUpdateSerializer, responses=StatusReportSerializer)
    @action(detail=True, methods=["post"], serializer_class=StatusReportUpdateSerializer)
    def updates(self, request, pk=None):
        """Post a timestamped update; the notice takes its status (resolved ends it)."""
        report = self.get_object()
        serializer = StatusReportUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report.post(serializer.validated_data["status"], serializer.validated_data["message"])
        report = self.get_queryset().get(pk=report.pk)
        return Response(StatusReportSerializer(report, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)
