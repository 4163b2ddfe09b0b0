"""The objects of a loopr.yaml, each read and written by its API serializer
(same fields, same validation, same defaults) with three differences:
objects refer to each other by slug instead of id, only the fields a person
declares are taken (no state, no ids), and a channel's secret is given only
as a `${VARIABLE}` reference, resolved when the file is applied."""

from __future__ import annotations

import copy
import re

from rest_framework import serializers

from monitors.api.serializers import MaintenanceWindowSerializer, MonitorSerializer
from monitors.models import Monitor
from notifications.api.serializers import ChannelSerializer, EscalationPolicySerializer
from notifications.models import Channel, EscalationPolicy

SECRET_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class FileSerializer:
    """What every object's serializer in a file does besides its API
    serializer's work. Its fields are built once per class and copied, not
    built again for each of the thousands of objects a plan reads and
    writes (building a model serializer's fields is most of its cost)."""

    def get_fields(self):
        cls = type(self)
        if "_field_template" not in cls.__dict__:
            cls._field_template = super().get_fields()
        fields = copy.deepcopy(cls._field_template)
        fields["slug"].required = False  # as DeclaredSerializer sets it; a copy is made from the arguments
        return fields

    # A file's object is matched to the scope's object of that slug, if
    # any: its slug is never another object's (DeclaredSerializer's check
    # would cost a query per object to say so).
    check_slug = False

    def validate(self, attrs: dict) -> dict:
        # The file's team, as if the API's `team` field had been given it:
        # before TeamOwnedSerializer.validate, which checks that every object
        # referred to is of that team, and DeclaredSerializer's slug check.
        attrs["team"] = self.context["scope"].team
        return super().validate(attrs)


class SlugReferenceField(serializers.SlugRelatedField):
    """Another object of the same scope, by slug (looked up in the
    transaction that applies the file, so objects it creates are there)."""

    default_error_messages = {
        "does_not_exist": "No {noun} with the slug {value!r} (in this file or already there).",
        "invalid": "A slug (a string).",
    }

    def __init__(self, model, **kwargs):
        self.model = model
        super().__init__(slug_field="slug", queryset=model.objects.all(), **kwargs)

    def get_queryset(self):
        return self.context["scope"].objects(self.model)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        # Kept for the whole write: a thousand monitors name the same few
        # channels. Only found objects are kept; one the file creates later
        # is looked up again.
        known = self.context.setdefault(("slugs", self.model), {})
        if data not in known:
            found = self.get_queryset().filter(slug=data).first()
            if found is None:
                self.fail("does_not_exist", noun=self.model._meta.verbose_name, value=data)
            known[data] = found
        return known[data]

    def to_representation(self, obj) -> str:
        return obj.slug


class SortedSlugsField(serializers.ManyRelatedField):
    """A list of slugs, in slug order when read (the file's order is not
    state: reordering a list is no change)."""

    def to_representation(self, iterable) -> list[str]:
        return sorted(super().to_representation(iterable))


def slug_list(model, **kwargs) -> SortedSlugsField:
    return SortedSlugsField(child_relation=SlugReferenceField(model), **kwargs)


class FileMonitorSerializer(FileSerializer, MonitorSerializer):
    channels = slug_list(Channel, required=False, help_text="Slugs of channels to alert; omitted on creation: "
                         "your default channels; [] for none.")
    escalation_policy = SlugReferenceField(EscalationPolicy, required=False, allow_null=True,
                                           help_text="Slug of the escalation policy for outages; null: plain channels.")

    class Meta(MonitorSerializer.Meta):
        fields = [
            "slug", "name", "kind", "url", "interval", "timeout", "method", "headers", "body", "expected_status",
            "keyword", "follow_redirects", "assertions", "tls_verify", "tls_expiry_alert_days", "grace", "schedule",
            "timezone", "regions", "retries", "recovery_checks", "latency_threshold_ms", "flap_threshold",
            "flap_window", "quorum", "channels", "escalation_policy", "paused",
        ]
        read_only_fields = []

    def to_representation(self, monitor: Monitor) -> dict:
        data = super().to_representation(monitor)
        data["regions"] = sorted(data["regions"])
        return data


class FileChannelSerializer(FileSerializer, ChannelSerializer):
    secret = serializers.CharField(
        write_only=True, required=False, allow_blank=False, max_length=500,
        help_text="Only as a ${VARIABLE} reference, resolved when the file is applied (the client sends the "
                  "variable's value from its environment); never exported. Left out: the stored secret stays.",
    )

    class Meta(ChannelSerializer.Meta):
        fields = [
            "slug", "name", "kind", "target", "config", "secret", "is_default", "enabled", "notify_degraded",
            "reminder_interval", "events", "quiet_hours_start", "quiet_hours_end", "quiet_hours_timezone",
        ]
        read_only_fields = []

    def validate_secret(self, reference: str) -> str:
        match = SECRET_REFERENCE.fullmatch(reference.strip())
        if match is None:
            raise serializers.ValidationError(
                "A secret goes in the file only as a ${VARIABLE} reference, never as its value.")
        variables = self.context.get("variables", {})
        if match[1] not in variables:
            raise serializers.ValidationError(f"The variable {match[1]} is not set.")
        return variables[match[1]]


class FileEscalationPolicySerializer(FileSerializer, EscalationPolicySerializer):
    steps = serializers.JSONField(
        help_text='Ordered steps, each {"after_minutes": N, "channels": [channel slugs]}: N minutes after an '
                  "incident is confirmed, if still open and unacknowledged, those channels are alerted.")

    class Meta(EscalationPolicySerializer.Meta):
        fields = ["slug", "name", "steps", "repeat_minutes"]
        read_only_fields = []

    def to_internal_value(self, data):
        if isinstance(data, dict) and isinstance(data.get("steps"), list):
            data = {**data, "steps": self._steps_by_id(data["steps"])}
        return super().to_internal_value(data)

    def _steps_by_id(self, steps: list) -> list:
        ids = self._channel_ids()
        converted, errors = [], {}
        for index, step in enumerate(steps):
            if isinstance(step, dict) and isinstance(step.get("channels"), list):
                unknown = [slug for slug in step["channels"] if not isinstance(slug, str) or slug not in ids]
                if unknown:
                    errors[index] = {"channels": [f"No channel with the slug(s) {', '.join(map(repr, unknown))} "
                                                  "(in this file or already there)."]}
                    continue
                step = {**step, "channels": [ids[slug] for slug in step["channels"]]}
            converted.append(step)
        if errors:
            raise serializers.ValidationError({"steps": errors})
        return converted

    def _channel_ids(self) -> dict[str, int]:
        return dict(self.context["scope"].objects(Channel).values_list("slug", "pk"))

    def to_representation(self, policy: EscalationPolicy) -> dict:
        data = super().to_representation(policy)
        slugs = self.context.setdefault("channel_slugs", {pk: slug for slug, pk in self._channel_ids().items()})
        data["steps"] = [{**step, "channels": [slugs.get(pk, pk) for pk in step["channels"]]} for step in data["steps"]]
        return data


class FileMaintenanceWindowSerializer(FileSerializer, MaintenanceWindowSerializer):
    monitors = slug_list(Monitor, allow_empty=False, help_text="Slugs of the monitors it covers.")

    class Meta(MaintenanceWindowSerializer.Meta):
        fields = [
            "slug", "name", "kind", "starts_at", "ends_at", "weekdays", "start_time", "cron", "duration_minutes",
            "timezone", "monitors",
        ]
        read_only_fields = []
