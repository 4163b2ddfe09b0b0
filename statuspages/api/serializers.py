from __future__ import annotations

from django.db import transaction
from django.urls import reverse
from rest_framework import exceptions, serializers

from loopr.api import StrictJSONTypes, TeamOwnedSerializer, ValidatedModelSerializer, has_role
from monitors.api.serializers import OwnedPrimaryKeyField
from monitors.models import Monitor
from teams.choices import Role

from ..choices import ReportStatus
from ..models import Component, StatusPage, StatusReport, StatusReportUpdate

MAX_COMPONENTS = 500


class TextField(serializers.CharField):
    """A string and nothing else: DRF's CharField would take 5 or 1.5 as "5"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ComponentSerializer(StrictJSONTypes, serializers.Serializer):
    monitor = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="Id of one of your monitors.")
    name = TextField(max_length=200, required=False, allow_blank=True,
                     help_text="What visitors read; default: the monitor's name.")
    group = TextField(max_length=100, required=False, allow_blank=True, default="",
                      help_text="Components with the same group are shown under it.")
    show_error_message = serializers.BooleanField(
        default=False, help_text="Show the failing check's error message (it may name internal hosts); "
                                 "otherwise only its kind.")

    def to_representation(self, component: Component) -> dict:
        return {"monitor": component.monitor_id, "name": component.name, "group": component.group,
                "show_error_message": component.show_error_message}


class StatusPageSerializer(TeamOwnedSerializer, ValidatedModelSerializer):
    components = ComponentSerializer(many=True, required=False, max_length=MAX_COMPONENTS,
                                     help_text="In the order shown.")
    url = serializers.SerializerMethodField(help_text="The public page.")

    class Meta:
        model = StatusPage
        fields = ["id", "team", "name", "slug", "public", "description", "components", "url", "created_at",
                  "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def get_url(self, page: StatusPage) -> str:
        path = reverse("status-page", args=[page.slug])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        team = attrs.get("team") or getattr(self.instance, "team", None)
        if "components" in attrs:
            attrs["components"] = self.check_components(attrs["components"], team)
        elif self.instance is not None and team is not None and team.pk != self.instance.team_id:
            strangers = self.instance.components.exclude(monitor__team=team).values_list("monitor_id", flat=True)
            if strangers:
                raise serializers.ValidationError({"team": [
                    f"Its components show monitors of its team ({', '.join(map(str, strangers))}): "
                    "give components of the new team with the move."]})
        return attrs

    def check_components(self, items: list[dict], team) -> list[dict]:
        # The monitors of the page's team, each once.
        ids = [item["monitor"] for item in items]
        mine = {m.pk: m for m in Monitor.objects.filter(team=team, pk__in=ids).only("pk", "name")}
        # Keyed by position, as DRF keys the items' own field errors.
        errors, seen = {}, set()
        for index, item in enumerate(items):
            pk = item["monitor"]
            if pk not in mine:
                errors[str(index)] = {"monitor": [f"The page's team has no monitor with id {pk}."]}
            elif pk in seen:
                errors[str(index)] = {"monitor": [f"Monitor {pk} is on the page already."]}
            seen.add(pk)
        if errors:
            raise serializers.ValidationError({"components": errors})
        return [{**item, "monitor": mine[item["monitor"]]} for item in items]

    @transaction.atomic
    def create(self, validated: dict) -> StatusPage:
        components = validated.pop("components", [])
        page = super().create(validated)
        page.set_components(components)
        return page

    @transaction.atomic
    def update(self, page: StatusPage, validated: dict) -> StatusPage:
        components = validated.pop("components", None)
        page = super().update(page, validated)
        if components is not None:
            page.set_components(components)
        return page


class StatusReportUpdateSerializer(StrictJSONTypes, serializers.ModelSerializer):
    status = serializers.ChoiceField(ReportStatus.choices)
    message = TextField(max_length=10000)

    class Meta:
        model = StatusReportUpdate
        fields = ["status", "message", "at"]
        read_only_fields = ["at"]


class MonitorIdsField(serializers.ListField):
    def to_representation(self, monitors) -> list[int]:
        return sorted(monitor.pk for monitor in monitors.all())


class StatusReportSerializer(ValidatedModelSerializer):
    page = OwnedPrimaryKeyField(queryset=StatusPage.objects.all(), help_text="Id of your status page.")
    title = TextField(max_length=200)
    monitors = MonitorIdsField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False,
                                     max_length=MAX_COMPONENTS, help_text="Affected components, by monitor id "
                                                                          "(monitors on the page).")
    status = serializers.ChoiceField(ReportStatus.choices, required=False,
                                     help_text="On creation, the first update's; later, set by each update.")
    message = TextField(max_length=10000, write_only=True, required=False,
                        help_text="On creation: the first update's text (required).")
    updates = StatusReportUpdateSerializer(many=True, read_only=True)

    class Meta:
        model = StatusReport
        fields = ["id", "page", "title", "status", "monitors", "message", "updates", "created_at", "resolved_at"]
        read_only_fields = ["created_at", "resolved_at"]

    def validate_page(self, page: StatusPage) -> StatusPage:
        # Writing on a page is an editor's work in its team (reading, any member's).
        request = self.context["request"]
        if not has_role(request, page.team_id, Role.EDITOR):
            raise exceptions.PermissionDenied({"page": ["Your role in the page's team does not allow notices; "
                                                        "editor or above does."]})
        return page

    def validate(self, attrs: dict) -> dict:
        if self.instance is None and not attrs.get("message"):
            raise serializers.ValidationError({"message": ["Required: the notice's first update."]})
        # A PUT repeats the status as it is; changing it takes an update.
        if self.instance is not None and attrs.get("status", self.instance.status) != self.instance.status:
            raise serializers.ValidationError({"status": ["Post an update to change the status."]})
        if self.instance is not None and "page" in attrs and attrs["page"] != self.instance.page:
            raise serializers.ValidationError({"page": ["A notice stays on its page."]})
        page = attrs.get("page") or self.instance.page
        if "monitors" in attrs:
            on_page = set(page.components.values_list("monitor_id", flat=True))
            strangers = [pk for pk in attrs["monitors"] if pk not in on_page]
            if strangers:
                raise serializers.ValidationError({"monitors": [f"Not on the page: {strangers}."]})
        extra = {name: attrs.pop(name) for name in ("monitors", "message") if name in attrs}
        attrs = super().validate(attrs)
        return {**attrs, **extra}

    @transaction.atomic
    def create(self, validated: dict) -> StatusReport:
        monitors, message = validated.pop("monitors", []), validated.pop("message")
        status = validated.pop("status", ReportStatus.INVESTIGATING)
        report = StatusReport.objects.create(**validated)
        report.monitors.set(monitors)
        report.post(status, message)
        return report

    @transaction.atomic
    def update(self, report: StatusReport, validated: dict) -> StatusReport:
        monitors = validated.pop("monitors", None)
        validated.pop("message", None)
        report = super().update(report, validated)
        if monitors is not None:
            report.monitors.set(monitors)
        report.page.touch()
        return report
