from __future__ import annotations

from operator import attrgetter

from django.db import models, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.relations import MANY_RELATION_KWARGS

from loopr.api import ValidatedModelSerializer
from notifications.models import Channel

from ..choices import ErrorKind, Health, MaintenanceKind
from ..models import CheckResult, Incident, MaintenanceWindow, Monitor, StatusChange
from ..regions import Region

# More ids than anyone sensibly sends in one list; they are looked up in one query.
MAX_IDS = 1000
# Monitors one POST may create: ten thousand take ten requests of about a
# second each, and a refused list is cheap to correct and send again.
MAX_BULK_CREATE = 1000
# Rows a statement inserts: ~35 columns each stays far below PostgreSQL's
# 65,535 parameters of one statement.
BULK_BATCH = 500


class HeadersField(serializers.JSONField):
    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except RecursionError:  # a form field holding "[[[[…", decoded here
            self.fail("invalid")


class LinkedRelatedField(serializers.ManyRelatedField):
    """Reads a monitor's regions or channels through `Monitor.linked`: a
    page of monitors has read them all at once."""

    def get_attribute(self, instance):
        linked = getattr(instance, "linked", None)
        if linked is None or instance.pk is None:
            return super().get_attribute(instance)
        return linked(self.source)


class RegionNameField(serializers.SlugRelatedField):
    """A region by name, looked up among all regions read once per request
    (there are a handful): a thousand monitors created in one request cost
    one query for their regions, not one per name."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:  # PostgreSQL refuses NUL
            self.fail("invalid")
        regions = self.context.get("regions_by_name")
        if regions is None:
            regions = self.context["regions_by_name"] = {region.name: region for region in self.get_queryset()}
        if data not in regions:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data)
        return regions[data]

    @classmethod
    def many_init(cls, *args, **kwargs):
        many_kwargs = {key: value for key, value in kwargs.items() if key in MANY_RELATION_KWARGS}
        return LinkedRelatedField(child_relation=cls(*args, **kwargs), **many_kwargs)


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


class OwnedIdsField(LinkedRelatedField):
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
        found = self._known(child.get_queryset(), ids)
        missing = [str(pk) for pk in ids if pk not in found]
        if missing:
            self.fail("unknown", noun=child.queryset.model._meta.verbose_name, ids=", ".join(missing))
        return [found[pk] for pk in ids]

    def _known(self, owned: models.QuerySet, ids: list[int]) -> dict[int, models.Model]:
        # Kept for the request: the items of a bulk create mostly name the
        # same few ids, which are then read once, not once per item.
        known = self.context.setdefault(("owned", owned.model, self.child_relation.owner().pk), {})
        unread = [pk for pk in ids if pk not in known]
        if unread:
            known.update(owned.in_bulk(unread))
        return known


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
        return super().get_queryset().filter(owner=self.owner())

    def owner(self):
        # The owner of the object being written: the caller when creating,
        # the object's owner when updating (so even a superuser cannot wire
        # one user's monitor to another user's channel).
        instance = self.root.instance
        return instance.owner if instance is not None else self.context["request"].user


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

    class Meta:
        model = Monitor
        fields = [
            "id", "name", "url", "kind", "interval", "timeout", "method", "headers", "body",
            "expected_status", "keyword", "follow_redirects", "regions", "retries", "recovery_checks",
            "latency_threshold_ms", "flap_threshold", "flap_window", "quorum", "channels", "paused",
            "status", "health", "is_flapping", "in_maintenance", "current_incident", "unserved_regions",
            "alerting", "status_changed_at", "last_checked_at", "next_check_at", "created_at",
        ]
        read_only_fields = [
            "kind", "status", "health", "is_flapping", "in_maintenance", "status_changed_at", "last_checked_at",
            "next_check_at", "created_at",
        ]

    def get_unserved_regions(self, monitor: Monitor) -> list[str]:
        if not monitor.linked("regions"):
            return []  # checked from every live region: none can be unserved
        if "live_regions" not in self.context:
            self.context["live_regions"] = set(Region.objects.live().values_list("name", flat=True))
        return monitor.unserved_regions(self.context["live_regions"])

    def validate(self, attrs: dict) -> dict:
        if self.instance is None:
            attrs["interval"], attrs["timeout"] = Monitor.default_schedule(attrs.get("interval"), attrs.get("timeout"))
        return super().validate(attrs)

    def create(self, validated_data: dict) -> Monitor:
        return create_monitors([validated_data])[0]

    def update(self, instance: Monitor, validated_data: dict) -> Monitor:
        regions = validated_data.pop("regions", None)
        paused = validated_data.pop("paused", None)
        channels = validated_data.pop("channels", None)
        for name, value in validated_data.items():
            setattr(instance, name, value)
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


class MonitorListSerializer(serializers.ListSerializer):
    """A list of monitors posted at once: each validated as if posted alone,
    all created in one transaction or, when any item is refused, none (the
    400 then maps each refused item's position to its errors by field)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", MAX_BULK_CREATE)
        kwargs.setdefault("allow_empty", False)
        super().__init__(*args, **kwargs)

    def create(self, validated_data: list[dict]) -> list[Monitor]:
        return create_monitors(validated_data)

    def to_representation(self, data) -> list[dict]:
        # A page of monitors: their regions and channels in one query each.
        monitors = list(data.all() if isinstance(data, models.manager.BaseManager) else data)
        Monitor.read_links(monitors)
        return super().to_representation(monitors)


MonitorSerializer.Meta.list_serializer_class = MonitorListSerializer


def create_monitors(items: list[dict]) -> list[Monitor]:
    """Monitors from validated data, in a few statements however many there
    are: the rows, then their regions and channels. A monitor created
    without a `channels` list gets its owner's default channels; `[]` is none."""
    monitors, regions, channels = [], [], []
    defaults: dict[int, list[Channel]] = {}
    for data in items:
        data = dict(data)
        regions.append(list(dict.fromkeys(data.pop("regions", []))))  # a name given twice is one region
        chosen = data.pop("channels", None)
        paused = data.pop("paused", False)
        monitor = Monitor(**data)
        if paused:
            monitor.pause()
        if chosen is None:
            if monitor.owner_id not in defaults:
                defaults[monitor.owner_id] = list(Channel.objects.defaults_for(monitor.owner_id))
            chosen = defaults[monitor.owner_id]
        channels.append(chosen)
        monitors.append(monitor)
    with transaction.atomic():
        Monitor.objects.bulk_create(monitors, batch_size=BULK_BATCH)
        _add_related(monitors, "regions", regions)
        _add_related(monitors, "channels", channels)
    for monitor, its_regions, its_channels in zip(monitors, regions, channels):
        # The answer shows them as written, without reading them back.
        monitor.set_links(sorted(its_regions, key=attrgetter("name")), sorted(its_channels, key=_channel_order))
    return monitors


def _channel_order(channel: Channel) -> tuple:
    return channel.name, channel.pk


def _add_related(monitors: list[Monitor], name: str, related: list[list[models.Model]]) -> None:
    field = Monitor._meta.get_field(name)
    through, source, target = field.remote_field.through, field.m2m_field_name(), field.m2m_reverse_field_name()
    through.objects.bulk_create(
        [through(**{source: monitor, target: obj}) for monitor, objs in zip(monitors, related) for obj in objs],
        batch_size=BULK_BATCH,
    )


class CheckResultSerializer(serializers.ModelSerializer):
    region = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = CheckResult
        fields = [
            "id", "region", "node", "scheduled_at", "checked_at", "ok", "latency_ms",
            "status_code", "error_kind", "error", "tls_expires_at", "missed_reason",
        ]
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
