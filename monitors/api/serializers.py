from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from loopr.api import ValidatedModelSerializer
from notifications.models import Channel

from ..choices import ErrorKind, Health, MaintenanceKind, MonitorKind, PingKind
from ..models import CheckResult, Incident, MaintenanceWindow, Monitor, Ping, StatusChange
from ..regions import Region

# More ids than anyone sensibly sends in one list; they are looked up in one query.
MAX_IDS = 1000


class HeadersField(serializers.JSONField):
    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except RecursionError:  # a form field holding "[[[[…", decoded here
            self.fail("invalid")


class RegionNameField(serializers.SlugRelatedField):
    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:  # PostgreSQL refuses NUL even in a lookup
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.STR)
class PlainChoiceField(serializers.ChoiceField):
    """A choice documented as a string listing its values, not as a named enum.

    drf-spectacular names enums after fields, so the same choice set under two
    field names (health / old / new) or two choice sets under one (channel
    and window `kind`) fail `spectacular --fail-on-warn`; ENUM_NAME_OVERRIDES
    in the settings would let these become enums again.
    """

    def __init__(self, choices, **kwargs):
        values = ", ".join(str(value) for value in dict(choices))
        kwargs["help_text"] = f"{kwargs.get('help_text', '')} One of: {values}.".strip()
        super().__init__(choices, **kwargs)


class OwnedIdsField(serializers.ManyRelatedField):
    """A list of ids, each of an object with the same owner as the object
    being written; anything else is named as unknown (another user's object
    is as unknown here as it is a 404 elsewhere)."""

    default_error_messages = {
        "too_many": f"At most {MAX_IDS} ids.",
        "unknown": "Unknown {noun} id(s): {ids}.",
    }

    def to_internal_value(self, data):
        if isinstance(data, (str, dict)) or not hasattr(data, "__iter__"):
            self.fail("not_a_list", input_type=type(data).__name__)
        data = list(data)
        if len(data) > MAX_IDS:
            self.fail("too_many")
        if not self.allow_empty and not data:
            self.fail("empty")
        child = self.child_relation
        ids = list(dict.fromkeys(child.pk_field.run_validation(item) for item in data))
        found = child.get_queryset().in_bulk(ids)
        missing = [str(pk) for pk in ids if pk not in found]
        if missing:
            self.fail("unknown", noun=child.queryset.model._meta.verbose_name, ids=", ".join(missing))
        return [found[pk] for pk in ids]


class OwnedPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """Set `queryset` to the model's; `get_queryset()` narrows it to the owner's rows."""

    def __init__(self, **kwargs):
        kwargs.setdefault("pk_field", serializers.IntegerField(min_value=1, max_value=2**63 - 1))
        super().__init__(**kwargs)

    @classmethod
    def many_init(cls, *args, **kwargs):
        many_kwargs = {key: kwargs.pop(key) for key in ("required", "allow_empty", "help_text") if key in kwargs}
        return OwnedIdsField(child_relation=cls(*args, **kwargs), **many_kwargs)

    def get_queryset(self):
        # The owner of the object being written: the caller when creating,
        # the object's owner when updating (so even a superuser cannot wire
        # one user's monitor to another user's channel).
        instance = self.root.instance
        owner = instance.owner if instance is not None else self.context["request"].user
        return super().get_queryset().filter(owner=owner)


class IncidentSummarySerializer(serializers.ModelSerializer):
    duration_seconds = serializers.SerializerMethodField()
    cause_kind = PlainChoiceField(ErrorKind.choices, read_only=True, help_text="The failing checks' error kind.")

    class Meta:
        model = Incident
        fields = ["id", "started_at", "confirmed_at", "duration_seconds", "cause", "cause_kind"]
        read_only_fields = fields

    def get_duration_seconds(self, incident: Incident) -> float:
        """Downtime so far, or in total once resolved."""
        return incident.duration.total_seconds()


class MonitorSerializer(ValidatedModelSerializer):
    # headers as the model field makes it (its validators included), safe from deep nesting.
    serializer_field_mapping = {**ValidatedModelSerializer.serializer_field_mapping, models.JSONField: HeadersField}
    regions = RegionNameField(
        many=True, required=False, slug_field="name", queryset=Region.objects.all(),
        help_text="Region names; empty means every region with a live probe worker.",
    )
    # Unbounded here: Monitor.clean() names the bounds from the settings (the
    # column's own range check would only say so again in other words).
    interval = serializers.IntegerField(required=False)
    timeout = serializers.FloatField(required=False)
    clean_exclude = ("interval",)
    channels = OwnedPrimaryKeyField(
        many=True, required=False, queryset=Channel.objects.all(),
        help_text="Ids of your channels to alert. Omitted on creation: your default channels; [] for none.",
    )
    current_incident = IncidentSummarySerializer(read_only=True, allow_null=True)
    unserved_regions = serializers.SerializerMethodField(
        help_text="Chosen regions with no online probe node: not checked from there right now.")
    alerting = serializers.BooleanField(
        read_only=True,
        help_text="Whether its alerts reach anyone: true when it has at least one enabled channel.")
    kind = PlainChoiceField(MonitorKind.choices, required=False,
                            help_text="Omitted: from the URL's scheme (http/https, tcp, dns, icmp).")
    ping_url = serializers.SerializerMethodField(
        help_text="Heartbeat: where its job pings (add /start, /fail, /<exit status> or /log); null otherwise.")

    class Meta:
        model = Monitor
        fields = [
            "id", "name", "kind", "url", "interval", "timeout", "method", "headers", "body",
            "expected_status", "keyword", "follow_redirects", "assertions", "tls_verify", "tls_expiry_alert_days",
            "grace", "schedule", "timezone", "ping_url", "next_ping_due_at",
            "regions", "retries", "recovery_checks",
            "latency_threshold_ms", "flap_threshold", "flap_window", "quorum", "channels", "paused",
            "status", "health", "is_flapping", "in_maintenance", "current_incident", "unserved_regions",
            "alerting", "status_changed_at", "last_checked_at", "next_check_at", "created_at",
        ]
        read_only_fields = [
            "status", "health", "is_flapping", "in_maintenance", "status_changed_at", "last_checked_at",
            "next_check_at", "next_ping_due_at", "created_at",
        ]

    def get_ping_url(self, monitor: Monitor) -> str | None:
        if not monitor.is_heartbeat:
            return None
        path = f"/ping/{monitor.ping_uuid}"
        if settings.LOOPR_PUBLIC_URL:
            return settings.LOOPR_PUBLIC_URL + path
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def get_unserved_regions(self, monitor: Monitor) -> list[str]:
        if "live_regions" not in self.context:
            self.context["live_regions"] = set(Region.objects.live().values_list("name", flat=True))
        return monitor.unserved_regions(self.context["live_regions"])

    def validate(self, attrs: dict) -> dict:
        if self.instance is None:
            if attrs.get("kind") == MonitorKind.HEARTBEAT:
                self.heartbeat_defaults(attrs)
            attrs["interval"], attrs["timeout"] = Monitor.default_schedule(attrs.get("interval"), attrs.get("timeout"))
        elif "url" in attrs and "kind" not in attrs and not self.instance.is_heartbeat:
            attrs["kind"] = ""  # a new URL may be another kind: taken from its scheme again
        return super().validate(attrs)

    @staticmethod
    def heartbeat_defaults(attrs: dict) -> None:
        if attrs.get("interval") is None and not attrs.get("schedule"):
            raise serializers.ValidationError(
                {"interval": "A heartbeat needs an interval (seconds between pings) or a cron schedule."})
        # Its grace is its tolerance: one missed deadline is an outage.
        attrs.setdefault("retries", 0)

    def create(self, validated_data: dict) -> Monitor:
        regions = validated_data.pop("regions", [])
        paused = validated_data.pop("paused", False)
        channels = validated_data.pop("channels", None)
        monitor = Monitor(**validated_data)
        if paused:
            monitor.pause()
        monitor.save()
        monitor.regions.set(regions)
        # Omitted means "my usual channels"; an explicit [] means none.
        if channels is None:
            channels = Channel.objects.defaults_for(monitor.owner)
        monitor.channels.set(channels)
        return monitor

    def update(self, instance: Monitor, validated_data: dict) -> Monitor:
        regions = validated_data.pop("regions", None)
        paused = validated_data.pop("paused", None)
        channels = validated_data.pop("channels", None)
        reschedule = any(validated_data.get(name, getattr(instance, name)) != getattr(instance, name)
                         for name in ("interval", "grace", "schedule", "timezone"))
        for name, value in validated_data.items():
            setattr(instance, name, value)
        if reschedule:
            instance.reschedule_pings()
        if paused is True and not instance.paused:
            instance.pause()
        elif paused is False and instance.paused:
            instance.resume()
        instance.save()
        if regions is not None:
            instance.regions.set(regions)
        if channels is not None:
            instance.channels.set(channels)
        return instance


class CheckResultSerializer(serializers.ModelSerializer):
    region = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = CheckResult
        fields = [
            "id", "region", "node", "scheduled_at", "checked_at", "ok", "latency_ms",
            "status_code", "error_kind", "error", "tls_expires_at", "missed_reason",
        ]
        read_only_fields = fields


class PingSerializer(serializers.ModelSerializer):
    kind = PlainChoiceField(PingKind.choices, read_only=True)

    class Meta:
        model = Ping
        fields = ["id", "at", "kind", "exit_status", "rid", "duration_ms", "method", "remote_addr", "user_agent",
                  "body"]
        read_only_fields = fields


class StatusChangeSerializer(serializers.ModelSerializer):
    old = PlainChoiceField(Health.choices, read_only=True)
    new = PlainChoiceField(Health.choices, read_only=True)

    class Meta:
        model = StatusChange
        fields = ["old", "new", "at", "cause", "region"]
        read_only_fields = fields


class IncidentSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.SerializerMethodField()
    cause = serializers.CharField(read_only=True, help_text="What the failing checks said.")
    cause_kind = PlainChoiceField(ErrorKind.choices, read_only=True, help_text="The failing checks' error kind.")
    is_open = serializers.BooleanField(read_only=True)

    class Meta:
        model = Incident
        fields = [
            "id", "monitor", "started_at", "confirmed_at", "resolved_at", "duration_seconds", "cause", "cause_kind",
            "regions", "is_open",
        ]
        read_only_fields = fields

    def get_duration_seconds(self, incident: Incident) -> float:
        """Downtime so far, or in total once resolved."""
        return incident.duration.total_seconds()


class IncidentDetailSerializer(IncidentSerializer):
    timeline = StatusChangeSerializer(source="changes", many=True, read_only=True)

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "timeline"]
        read_only_fields = fields


class MaintenanceWindowSerializer(ValidatedModelSerializer):
    kind = PlainChoiceField(MaintenanceKind.choices, required=False)
    monitors = OwnedPrimaryKeyField(
        many=True, allow_empty=False, queryset=Monitor.objects.all(), help_text="Ids of your monitors."
    )
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), required=False, max_length=7,
        help_text="Weekly: days, 0 = Monday … 6 = Sunday.",
    )
    active = serializers.SerializerMethodField()

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id", "name", "kind", "starts_at", "ends_at", "weekdays", "start_time", "cron", "duration_minutes",
            "timezone", "monitors", "active", "created_at",
        ]
        read_only_fields = ["created_at"]

    def get_active(self, window: MaintenanceWindow) -> bool:
        """Whether the window is on right now."""
        return window.active_at(timezone.now())

    def validate_weekdays(self, value: list[int]) -> list[int]:
        return sorted(set(value))
