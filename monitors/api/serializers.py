from __future__ import annotations

import math
from operator import attrgetter

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from rest_framework import serializers
from rest_framework.relations import MANY_RELATION_KWARGS

from loopr.api import (
    DeclaredSerializer,
    PlainReads,
    StrictJSONTypes,
    TeamOwnedSerializer,
    slug_clash_as_400,
    token_team,
)
from loopr.declarative import write_with_free_slugs
from notifications.models import Channel, EscalationPolicy

from .. import rollups
from ..choices import ErrorKind, Health, MaintenanceKind, MonitorKind, PingKind
from ..models import CheckResult, Incident, MaintenanceWindow, Monitor, Ping, StatusChange
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


class PlainChoiceField(serializers.ChoiceField):
    """A choice whose help text lists its values. (Its schema is an enum named
    after the choice class: ENUM_NAME_OVERRIDES in the settings, since
    drf-spectacular would name it after the field, and the same set goes by
    several field names: health / old / new; and several sets by one: kind.)"""

    def __init__(self, choices, **kwargs):
        values = ", ".join(str(value) for value in dict(choices))
        kwargs["help_text"] = f"{kwargs.get('help_text', '')} One of: {values}.".strip()
        super().__init__(choices, **kwargs)


class OwnedIdsField(LinkedRelatedField):
    """A list of ids, each of an object the caller can see; anything else is
    named as unknown (another team's object is as unknown here as it is a
    404 elsewhere). That they are of the written object's team is checked
    with the team (TeamOwnedSerializer)."""

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
        known = self.context.setdefault(("visible", owned.model), {})
        unread = [pk for pk in ids if pk not in known]
        if unread:
            known.update(owned.in_bulk(unread))
        return known


class OwnedPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """Set `queryset` to the model's; `get_queryset()` narrows it to what the caller may see."""

    def __init__(self, **kwargs):
        kwargs.setdefault("pk_field", serializers.IntegerField(min_value=1, max_value=2**63 - 1))
        super().__init__(**kwargs)

    @classmethod
    def many_init(cls, *args, **kwargs):
        many_kwargs = {key: kwargs.pop(key) for key in ("required", "allow_empty", "help_text") if key in kwargs}
        return OwnedIdsField(child_relation=cls(*args, **kwargs), **many_kwargs)

    def get_queryset(self):
        request = self.context["request"]
        return super().get_queryset().visible_to(request.user, team=token_team(request))


class BadgeTokenSerializer(serializers.Serializer):
    badge_token = serializers.CharField(help_text="Badges are at /badge/<badge_token>/status.svg and beside it.")


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


class MonitorSerializer(PlainReads, TeamOwnedSerializer, DeclaredSerializer):
    # headers as the model field makes it (its validators included), safe from deep nesting.
    serializer_field_mapping = {**DeclaredSerializer.serializer_field_mapping, models.JSONField: HeadersField}
    regions = RegionNameField(
        many=True, required=False, slug_field="name", queryset=Region.objects.all(),
        help_text="Region names; empty means every region with a live probe worker.",
    )
    # Unbounded here: Monitor.clean() names the bounds from the settings (the
    # column's own range check would only say so again in other words).
    interval = serializers.IntegerField(required=False)
    timeout = serializers.FloatField(required=False)
    clean_exclude = ("interval",)
    team_references = ("channels", "escalation_policy")
    team_referrers = ("maintenance_windows",)
    channels = OwnedPrimaryKeyField(
        many=True, required=False, queryset=Channel.objects.all(),
        help_text="Ids of its team's channels to alert. Omitted on creation: the team's default channels; [] for none.",
    )
    escalation_policy = OwnedPrimaryKeyField(
        required=False, allow_null=True, queryset=EscalationPolicy.objects.all(),
        help_text="Id of its team's escalation policy: its steps, not `channels`, get an outage's down alert "
                  "(recovery goes to everyone told). null: plain channels.",
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
    uptime_24h = serializers.SerializerMethodField(
        help_text="Uptime percent of the current hour and the 23 before it; null without data.")
    uptime_30d = serializers.SerializerMethodField(
        help_text="Uptime percent of today (UTC) and the 29 days before; null without data.")
    latency_p95_24h_ms = serializers.SerializerMethodField(
        help_text="95th percentile of successful checks' latency over the span of uptime_24h.")

    class Meta:
        model = Monitor
        fields = [
            "id", "team", "slug", "managed", "name", "kind", "url", "interval", "timeout", "method", "headers", "body",
            "expected_status", "keyword", "follow_redirects", "assertions", "tls_verify", "tls_expiry_alert_days",
            "grace", "schedule", "timezone", "ping_url", "next_ping_due_at",
            "regions", "retries", "recovery_checks",
            "latency_threshold_ms", "flap_threshold", "flap_window", "quorum", "channels", "escalation_policy", "paused",
            "status", "health", "is_flapping", "in_maintenance", "current_incident", "unserved_regions",
            "alerting", "uptime_24h", "uptime_30d", "latency_p95_24h_ms", "status_changed_at", "last_checked_at",
            "next_check_at", "badge_token", "created_at",
        ]
        read_only_fields = [
            "status", "health", "is_flapping", "in_maintenance", "status_changed_at", "last_checked_at",
            "next_check_at", "next_ping_due_at", "badge_token", "created_at",
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
        if not monitor.linked("regions"):
            return []  # checked from every live region: none can be unserved
        if "live_regions" not in self.context:
            self.context["live_regions"] = set(Region.objects.live().values_list("name", flat=True))
        return monitor.unserved_regions(self.context["live_regions"])

    def get_uptime_24h(self, monitor: Monitor) -> float | None:
        return self._summary(monitor).uptime_24h

    def get_uptime_30d(self, monitor: Monitor) -> float | None:
        return self._summary(monitor).uptime_30d

    def get_latency_p95_24h_ms(self, monitor: Monitor) -> float | None:
        return self._summary(monitor).latency_p95_24h_ms

    def _summary(self, monitor: Monitor) -> rollups.Summary:
        # Once for the whole page (a few queries), not once per monitor; and
        # not at all for monitors just created, which have no results yet.
        if "summaries" not in self.context:
            request = self.context.get("request")
            page = self.parent.instance if isinstance(self.parent, serializers.ListSerializer) else [monitor]
            created = request is not None and request.method == "POST"
            self.context["summaries"] = {} if created else rollups.summaries([m.pk for m in page], hours=False)
        return self.context["summaries"].get(monitor.pk, rollups.Summary())

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
        return create_monitors([validated_data])[0]

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


class MonitorListSerializer(serializers.ListSerializer):
    """A list of monitors posted at once: each validated as if posted alone,
    all created in one transaction or, when any item is refused, none (the
    400 then maps each refused item's position to its errors by field)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", MAX_BULK_CREATE)
        kwargs.setdefault("allow_empty", False)
        super().__init__(*args, **kwargs)

    def validate(self, attrs: list[dict]) -> list[dict]:
        given = [item["slug"] for item in attrs if item.get("slug")]
        twice = sorted({slug for slug in given if given.count(slug) > 1})
        if twice:
            raise serializers.ValidationError(f"Slugs given to more than one monitor: {', '.join(twice)}.")
        return super().validate(attrs)

    def create(self, validated_data: list[dict]) -> list[Monitor]:
        return create_monitors(validated_data)

    def save(self, **kwargs):
        with slug_clash_as_400():
            return super().save(**kwargs)

    def to_representation(self, data) -> list[dict]:
        # A page of monitors: their regions and channels in one query each.
        monitors = list(data.all() if isinstance(data, models.manager.BaseManager) else data)
        Monitor.read_links(monitors)
        return super().to_representation(monitors)


MonitorSerializer.Meta.list_serializer_class = MonitorListSerializer


def create_monitors(items: list[dict]) -> list[Monitor]:
    """Monitors from validated data, in a few statements however many there
    are: the rows, then their regions and channels. A monitor created
    without a `channels` list gets its team's default channels; `[]` is none."""
    monitors, regions, channels = [], [], []
    defaults: dict[int, list[Channel]] = {}
    for data in items:
        data = dict(data)
        regions.append(list(dict.fromkeys(data.pop("regions", []))))  # a name given twice is one region
        chosen = data.pop("channels", None)
        paused = data.pop("paused", False)
        monitor = Monitor(**data)
        monitor.fill_kind()
        if paused:
            monitor.pause()
        if chosen is None:
            monitor.fill_team()
            if monitor.team_id not in defaults:
                defaults[monitor.team_id] = list(Channel.objects.defaults_for(monitor.team_id))
            chosen = defaults[monitor.team_id]
        channels.append(chosen)
        monitors.append(monitor)
    def write() -> None:  # in one transaction
        Monitor.objects.bulk_create(monitors, batch_size=BULK_BATCH)
        _add_related(monitors, "regions", regions)
        _add_related(monitors, "channels", channels)

    write_with_free_slugs(monitors, write)
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
class FiniteFloatField(serializers.FloatField):
    """A float that is null when not finite: ingest refuses NaN and the
    infinities, but a row stored before it did must not make the whole page
    a 500 (JSON has no NaN)."""

    def to_representation(self, value):
        value = super().to_representation(value)
        return value if math.isfinite(value) else None


class CheckResultSerializer(PlainReads, serializers.ModelSerializer):
    region = serializers.SlugRelatedField(slug_field="name", read_only=True)
    latency_ms = FiniteFloatField(read_only=True, allow_null=True)
    node = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True,
                                        help_text="The probe node's name; null for a missed slot.")

    class Meta:
        model = CheckResult
        fields = [
            "id", "region", "node", "scheduled_at", "checked_at", "ok", "latency_ms",
            "status_code", "error_kind", "error", "tls_expires_at", "missed_reason", "missed_until",
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
            "regions", "is_open", "acknowledged_at", "acknowledged_by", "acknowledged_via", "acknowledgement_note",
        ]
        read_only_fields = fields

    def get_duration_seconds(self, incident: Incident) -> float:
        """Downtime so far, or in total once resolved."""
        return incident.duration.total_seconds()


class AcknowledgementSerializer(StrictJSONTypes, serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=1000,
                                 help_text="Optional: what is being done, for the channels and the record.")


class IncidentDetailSerializer(IncidentSerializer):
    timeline = StatusChangeSerializer(source="changes", many=True, read_only=True)
    escalation = serializers.SerializerMethodField()

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "timeline", "escalation"]
        read_only_fields = fields

    def get_escalation(self, incident: Incident) -> dict | None:
        """Its escalation policy's progress: `fired` lists each step sent
        (`step`, `round`, `at`, `channels`); `next_step` is due at `due_at`
        (null once it stopped: acknowledged, resolved or out of steps).
        null when its monitor has no policy."""
        escalation = getattr(incident, "escalation", None)
        if escalation is None:
            return None
        return {"policy": escalation.policy_id, "fired": escalation.fired, "due_at": escalation.due_at,
                "next_step": escalation.next_step + 1 if escalation.due_at else None}


class MaintenanceWindowSerializer(TeamOwnedSerializer, DeclaredSerializer):
    kind = PlainChoiceField(MaintenanceKind.choices, required=False)
    team_references = ("monitors",)
    monitors = OwnedPrimaryKeyField(
        many=True, allow_empty=False, queryset=Monitor.objects.all(), help_text="Ids of its team's monitors."
    )
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), required=False, max_length=7,
        help_text="Weekly: days, 0 = Monday … 6 = Sunday.",
    )
    active = serializers.SerializerMethodField()

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id", "team", "slug", "managed", "name", "kind", "starts_at", "ends_at", "weekdays", "start_time", "cron",
            "duration_minutes",
            "timezone", "monitors", "active", "created_at",
        ]
        read_only_fields = ["created_at"]

    def get_active(self, window: MaintenanceWindow) -> bool:
        """Whether the window is on right now."""
        return window.active_at(timezone.now())

    def validate_weekdays(self, value: list[int]) -> list[int]:
        return sorted(set(value))
