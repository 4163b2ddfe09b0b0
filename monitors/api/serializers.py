from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from workers.models import Region

from ..models import CheckResult, Monitor
from ..validators import validate_expected_status, validate_headers, validate_target_url


def _django(validator):
    def run(value):
        try:
            validator(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc

    return run


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


class MonitorSerializer(serializers.ModelSerializer):
    url = serializers.CharField(max_length=2000, validators=[_django(validate_target_url)])
    headers = HeadersField(required=False, validators=[_django(validate_headers)])
    expected_status = serializers.CharField(
        max_length=200, required=False, validators=[_django(validate_expected_status)]
    )
    regions = RegionNameField(
        many=True, required=False, slug_field="name", queryset=Region.objects.all(),
        help_text="Region names; empty means every region with a live probe worker.",
    )
    interval = serializers.IntegerField(required=False)
    timeout = serializers.FloatField(required=False)

    class Meta:
        model = Monitor
        fields = [
            "id", "name", "url", "kind", "interval", "timeout", "method", "headers", "body",
            "expected_status", "keyword", "follow_redirects", "regions", "retries", "paused",
            "status", "status_changed_at", "last_checked_at", "next_check_at", "created_at",
        ]
        read_only_fields = ["kind", "status", "status_changed_at", "last_checked_at", "next_check_at", "created_at"]

    def validate_interval(self, value: int) -> int:
        if not settings.LOOPR_MIN_INTERVAL <= value <= settings.LOOPR_MAX_INTERVAL:
            raise serializers.ValidationError(
                f"Must be between {settings.LOOPR_MIN_INTERVAL} and {settings.LOOPR_MAX_INTERVAL} seconds."
            )
        return value

    def validate(self, attrs: dict) -> dict:
        instance = self.instance
        interval = attrs.get("interval", instance.interval if instance else None)
        timeout = attrs.get("timeout", instance.timeout if instance else None)
        if interval is None:
            interval = attrs["interval"] = max(60, settings.LOOPR_MIN_INTERVAL)
        if timeout is None:
            timeout = attrs["timeout"] = min(10.0, interval / 2, float(settings.LOOPR_MAX_TIMEOUT))
        if not 0 < timeout < interval:
            raise serializers.ValidationError({"timeout": "Must be above 0 and below the interval."})
        if timeout > settings.LOOPR_MAX_TIMEOUT:
            raise serializers.ValidationError({"timeout": f"Must be at most {settings.LOOPR_MAX_TIMEOUT} seconds."})
        return attrs

    def create(self, validated_data: dict) -> Monitor:
        regions = validated_data.pop("regions", [])
        paused = validated_data.pop("paused", False)
        monitor = Monitor(**validated_data)
        if paused:
            monitor.pause()
        monitor.save()
        monitor.regions.set(regions)
        return monitor

    def update(self, instance: Monitor, validated_data: dict) -> Monitor:
        regions = validated_data.pop("regions", None)
        paused = validated_data.pop("paused", None)
        for name, value in validated_data.items():
            setattr(instance, name, value)
        if paused is True and not instance.paused:
            instance.pause()
        elif paused is False and instance.paused:
            instance.resume()
        instance.save()
        if regions is not None:
            instance.regions.set(regions)
        return instance


class CheckResultSerializer(serializers.ModelSerializer):
    region = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = CheckResult
        fields = [
            "id", "region", "node", "scheduled_at", "checked_at", "ok", "latency_ms",
            "status_code", "error_kind", "error", "tls_expires_at",
        ]
        read_only_fields = fields
