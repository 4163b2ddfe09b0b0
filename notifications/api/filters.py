from __future__ import annotations

from django_filters import rest_framework as filters

from loopr.api import IdFilter, StrictBooleanFilter

from ..choices import ChannelKind, DeliveryStatus, Event
from ..models import Channel, Notification


class ChannelFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=ChannelKind.choices)
    enabled = StrictBooleanFilter()
    is_default = StrictBooleanFilter()

    class Meta:
        model = Channel
        fields = ["kind", "enabled", "is_default"]


class NotificationFilter(filters.FilterSet):
    channel = IdFilter(field_name="channel_id")
    incident = IdFilter(field_name="incident_id")
    monitor = IdFilter(field_name="monitor_id")
    event = filters.ChoiceFilter(choices=Event.choices)
    status = filters.ChoiceFilter(choices=DeliveryStatus.choices)

    class Meta:
        model = Notification
        fields = ["channel", "incident", "monitor", "event", "status"]
