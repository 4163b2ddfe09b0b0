from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from loopr.api import TeamScoped, WarnsWhenManaged
from teams import audit

from ..models import Channel, EscalationPolicy, Notification
from ..services import send_test
from .filters import ChannelFilter, NotificationFilter
from .serializers import (
    ChannelSerializer,
    ChannelTestSerializer,
    ChannelWithSecretSerializer,
    EscalationPolicySerializer,
    NotificationSerializer,
)


class ChannelViewSet(WarnsWhenManaged, TeamScoped, viewsets.ModelViewSet):
    queryset = Channel.objects.all()
    serializer_class = ChannelSerializer
    filterset_class = ChannelFilter
    throttle_scope = "channel-test"  # used only by the test action's throttle

    def get_serializer_class(self):
        # The signing secret is shown once: in the answer that made it.
        return ChannelWithSecretSerializer if self.action in {"create", "rotate_secret"} else ChannelSerializer

    @extend_schema(request=None, responses=ChannelWithSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """A new signing secret for a webhook channel; the old one stops working at once."""
        channel = self.get_object()
        if not channel.is_signed:
            raise serializers.ValidationError({"kind": "Only webhook channels have a signing secret."})
        with audit.change(request, channel, "rotate-secret"):
            channel.rotate_secret()
        return Response(self.get_serializer(channel).data)

    @extend_schema(request=None, responses=ChannelTestSerializer)
    # Each test holds a request for up to the transport's deadline and sends
    # to a third party: a few a minute per user is plenty.
    @action(detail=True, methods=["post"], throttle_classes=[ScopedRateThrottle])
    def test(self, request, pk=None):
        """Send a clearly marked test message now: one attempt, never retried.

        Answers 200 whenever the attempt was made, including when the
        receiver refused it: `ok`, `status_code`, `reply` and `error` say
        what happened, and the attempt is in the delivery log.
        """
        notification, attempt = send_test(self.get_object())
        if attempt is None:  # only if a sender claimed the brand-new row first
            return Response({"detail": "The test message is being sent by a worker; see /notifications/."},
                            status=status.HTTP_409_CONFLICT)
        notification.refresh_from_db()
        return Response(ChannelTestSerializer({
            "notification": notification.pk, "ok": attempt.ok, "status": notification.status,
            "status_code": attempt.status_code, "reply": attempt.reply, "error": attempt.error,
            "duration_ms": attempt.duration_ms, "at": attempt.at,
        }).data)


class NotificationViewSet(TeamScoped, viewsets.ReadOnlyModelViewSet):
    queryset = Notification.objects.prefetch_related("delivery_attempts")
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter


class EscalationPolicyViewSet(WarnsWhenManaged, TeamScoped, viewsets.ModelViewSet):
    queryset = EscalationPolicy.objects.all()
    serializer_class = EscalationPolicySerializer
