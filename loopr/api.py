"""API pieces shared by every app's viewsets."""

from __future__ import annotations

import copy
import re
from contextlib import contextmanager
from datetime import datetime, timezone

import orjson
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.utils import timezone as django_timezone
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, pagination, parsers, permissions, renderers, serializers
from rest_framework.exceptions import ParseError
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings
from rest_framework.utils.encoders import JSONEncoder

from teams import audit
from teams.choices import Role, TokenScope
from teams.models import Membership, Team

from .declarative import SlugTaken
from .querysets import team_id_of
from .wireformats import TIME_OF_DAY_PATTERN


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:  # DRF turns only ValueError into a 400
            raise ParseError("JSON parse error - nested too deeply.") from exc


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON, written by orjson: a day of minutes (1,440 buckets, 280 kB)
    takes 0.45 ms instead of 5.9. The same document: what orjson does not
    write as DRF does (times, with their Z; decimals, lazy strings, …) goes
    through DRF's own encoder, and the two line separators JavaScript will
    not take in a string are escaped as DRF escapes them. Indented output
    (the browsable API, `; indent=`) stays DRF's."""

    _OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
    _encode = JSONEncoder().default

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        if self.get_indent(accepted_media_type, renderer_context or {}):
            return super().render(data, accepted_media_type, renderer_context)
        out = orjson.dumps(data, default=self._encode, option=self._OPTIONS)
        if b"\xe2\x80\xa8" in out or b"\xe2\x80\xa9" in out:
            out = out.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        return out


# The most rows one page of any list may hold: a client asking for more gets
# this many (as DRF caps), and a page of monitors this size still answers in
# well under a second.
MAX_PAGE_SIZE = 1000


def query_int(request, name: str, default: int, cap: int | None = None) -> int:
    """A positive whole number from the query string (`default` when absent),
    above `cap` read as `cap`; anything else ("", "1.5", "-1", "x") is a 400
    naming the parameter, where DRF's paginators quietly use their default."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise serializers.ValidationError({name: ["A whole number of at least 1."]})
    return min(int(raw), cap) if cap else int(raw)


def page_parameters(size_description: str) -> list[dict]:
    """The schema of `page_size` as query_int reads it (the cap is not a
    maximum: a larger size is read as the cap, not refused)."""
    return [{"name": "page_size", "required": False, "in": "query", "description": size_description,
             "schema": {"type": "integer", "minimum": 1}}]


class PageNumberPagination(pagination.PageNumberPagination):
    """Every list's pages (`PAGE_SIZE` rows), `page_size` up to MAX_PAGE_SIZE."""

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    last_page_strings = ()  # the schema says a page is a number

    def get_page_size(self, request) -> int:
        return query_int(request, self.page_size_query_param, self.page_size, self.max_page_size)

    def get_page_number(self, request, paginator) -> int:
        # A page past the last is still DRF's 404 ("Invalid page.").
        return query_int(request, self.page_query_param, 1)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [{"name": self.page_query_param, "required": False, "in": "query",
                 "description": "Page number (from 1); past the last page is a 404.",
                 "schema": {"type": "integer", "minimum": 1}},
                *page_parameters(f"Rows per page; default {self.page_size}, at most {self.max_page_size:,} "
                                 "(a larger size gets that many).")]


# Ids one error message names at most.
MAX_NAMED = 20


def token_team(request) -> int | None:
    """The team a team token is limited to; None for a session or a user token."""
    return getattr(request.auth, "team_id", None)


class TokenScopePermission(permissions.BasePermission):
    """A read token reads: any other method is a 403."""

    message = "This token may only read."

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return getattr(request.auth, "scope", TokenScope.WRITE) == TokenScope.WRITE


class TeamRolePermission(TokenScopePermission):
    """Who may write what: reading is for every member (the queryset has
    already hidden other teams' objects: a 404); any write needs a write
    token (or a session) and at least the view's `write_role` (editor) in
    the object's team, or it is a 403."""

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return has_role(request, team_id_of(obj), getattr(view, "write_role", Role.EDITOR), self)


def has_role(request, team_id: int | None, needed: str, permission=None) -> bool:
    """Whether the caller holds at least `needed` in the team (a superuser: in every team)."""
    if request.user.is_superuser:
        return True
    role = Membership.objects.filter(team_id=team_id, user=request.user).values_list("role", flat=True).first()
    if Role.rank(role) >= Role.rank(needed):
        return True
    if permission is not None:
        permission.message = f"Your role in this team ({role or 'none'}) does not allow this; {needed} or above does."
    return False


class TeamScoped:
    """Team visibility for a viewset: `queryset` narrowed by the model's
    `visible_to(user, team)` (another team's object is a 404), writes
    checked by TeamRolePermission (a 403), and new objects created by the
    caller in the team their serializer's `team` field chose."""

    permission_classes = [permissions.IsAuthenticated, TeamRolePermission]
    write_role = Role.EDITOR

    def get_queryset(self):
        return self.visible(super().get_queryset())

    def visible(self, queryset: models.QuerySet) -> models.QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return queryset.none()
        return queryset.visible_to(self.request.user, team=token_team(self.request))

    # Each change and its audit entry commit together (savepoint=False: no
    # extra statements when the request already runs in a transaction).
    def perform_create(self, serializer) -> None:
        with transaction.atomic(savepoint=False):
            created = serializer.save(owner=self.request.user)
            audit.record_many(self.request, "create", created if isinstance(created, list) else [created])

    def perform_update(self, serializer) -> None:
        with audit.change(self.request, serializer.instance):
            serializer.save()

    def perform_destroy(self, instance) -> None:
        with transaction.atomic(savepoint=False):
            audit.record(self.request, "delete", instance)
            instance.delete()


# What JSON type each kind of field takes. DRF reads leniently ("5" for a
# number, 5 for a string, "yes" or 1 for a boolean), which the schema does not
# say; a JSON body must match it. (A form's fields are all text, and DRF reads
# them as it always does.)
_JSON_TYPES: list[tuple[type, tuple[type, ...], str]] = [
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "a whole number"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.DecimalField, (int, float), "a number"),
    (serializers.ChoiceField, (str,), "a string"),
    (serializers.CharField, (str,), "a string"),
    (serializers.DateTimeField, (str,), "a string"),
    (serializers.TimeField, (str,), "a string"),
    (serializers.ListField, (list,), "a list"),
    (serializers.ManyRelatedField, (list,), "a list"),
    (serializers.PrimaryKeyRelatedField, (int,), "an id (a whole number)"),
]


class StrictJSONTypes:
    """For serializers taking input: in a JSON body, each field's value is of
    its documented JSON type, or the 400 names it."""

    def to_internal_value(self, data):
        if isinstance(data, dict) and not hasattr(data, "getlist"):  # JSON, not a form's QueryDict
            errors = {}
            for name, field in self.fields.items():
                value = data.get(name)
                if field.read_only or value is None or name not in data:
                    continue
                for kind, types, says in _JSON_TYPES:
                    if isinstance(field, kind):
                        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
                            errors[name] = [f"Expected {says}."]
                        break
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
# The name from before teams, for viewsets written against it.
OwnedByUser = TeamScoped


class CallersTeamDefault:
    """On creation only: the team a team token is limited to, else the
    caller's personal team."""

    requires_context = True

    def __call__(self, serializer_field):
        if serializer_field.parent.instance is not None:
            raise serializers.SkipField()
        context = serializer_field.context
        if "callers_team" not in context:  # once for a whole list of monitors
            context["callers_team"] = self.team_of(context["request"], serializer_field.get_queryset())
        return context["callers_team"]

    @staticmethod
    def team_of(request, teams: models.QuerySet) -> Team:
        team = token_team(request)
        if team is not None:
            return teams.get(pk=team)
        personal = teams.filter(personal_of=request.user).first()
        return personal if personal is not None else teams.get(pk=Team.objects.personal_for(request.user).pk)


class TeamField(serializers.PrimaryKeyRelatedField):
    """The team an object belongs to, by id: one of the caller's teams (any
    other is as unknown as a missing id: a 400 naming `team`); writing into
    it needs the editor role (or a 403)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default", CallersTeamDefault())
        kwargs.setdefault("pk_field", serializers.IntegerField(min_value=1, max_value=2**63 - 1))
        kwargs.setdefault("help_text", "Id of the team it belongs to; omitted on creation: your personal team "
                                       "(a team token's team). Needs the editor role there.")
        super().__init__(queryset=Team.objects.all(), **kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        if request is None:
            return Team.objects.none()
        teams = Team.objects.of(request.user).with_role_of(request.user)
        team = token_team(request)
        return teams if team is None else teams.filter(pk=team)


class TeamOwnedSerializer(serializers.ModelSerializer):
    """A serializer of a team-owned model: its `team` (chosen on creation,
    movable by an editor of both teams), and the objects it refers to in
    `team_references` all of that same team (a 400 naming the field)."""

    team = TeamField()
    team_references: tuple[str, ...] = ()
    # Reverse relations whose objects refer to this one: it cannot move away from them.
    team_referrers: tuple[str, ...] = ()

    def validate_team(self, team: Team) -> Team:
        request = self.context["request"]
        if self.instance is not None and team.pk == self.instance.team_id:
            return team
        role = getattr(team, "caller_role", None)
        if not (request.user.is_superuser or Role.rank(role) >= Role.rank(Role.EDITOR)):
            raise exceptions.PermissionDenied(
                {"team": [f"Your role in team {team.pk} does not allow creating or moving objects into it; "
                          "editor or above does."]})
        return team

    def validate(self, attrs: dict) -> dict:
        team = attrs.get("team") or getattr(self.instance, "team", None)
        moving = self.instance is not None and team is not None and team.pk != self.instance.team_id
        for name in self.team_references:
            if name in attrs:
                chosen = attrs[name]
            elif moving:
                chosen = getattr(self.instance, name)
                chosen = list(chosen.all()) if isinstance(chosen, models.Manager) else chosen
            else:
                continue
            chosen = [] if chosen is None else chosen if isinstance(chosen, list) else [chosen]
            strangers = [str(obj.pk) for obj in chosen if obj.team_id != team.pk]
            if strangers:
                raise serializers.ValidationError(
                    {name: [f"Of another team than {team.name!r} (id {team.pk}): {', '.join(strangers)}."]})
        for name in self.team_referrers if moving else ():
            users = getattr(self.instance, name).exclude(team=team).values_list("pk", flat=True)[:MAX_NAMED]
            if users:
                raise serializers.ValidationError({"team": [
                    f"Still used by {name.replace('_', ' ')} of its team (ids {', '.join(map(str, users))}): "
                    "move or change those first."]})
        return super().validate(attrs)


class WarnsWhenManaged:
    """An update of an object a loopr.yaml manages is made, and answered
    with a `Warning` header (RFC 9111's 299, "miscellaneous persistent"):
    the next plan shows the edit as drift, the next apply undoes it."""

    def update(self, request, *args, **kwargs):
        response = super().update(request, *args, **kwargs)
        if response.status_code == 200 and response.data.get("managed"):
            response["Warning"] = ('299 loopr "managed by a loopr.yaml: this edit shows as drift in the next plan, '
                                   'and the next apply of the file undoes it"')
        return response
class TimeOfDayField(serializers.TimeField):
    """hh:mm, hh:mm:ss or hh:mm:ss.ffffff; DRF alone would also take "1200",
    "12", "T12:00" or an offset that it then drops."""

    def to_internal_value(self, value):
        if isinstance(value, str) and not re.fullmatch(TIME_OF_DAY_PATTERN, value):
            self.fail("invalid", format="hh:mm[:ss[.ffffff]]")
        return super().to_internal_value(value)


# Runs the model's own validation, as NetBox's serializer of that name does:
# `full_clean()` on the object as it would be stored, so that the API keeps
# the rules the admin's forms keep (they call it too). Its errors become a 400
# keyed by field, like the serializer's own. Fields the request does not write
# are left out of the field checks (the owner is set only when saving; a
# partial update keeps what is stored), as are `clean_exclude`; `clean()`
# always sees the whole object. (A comment, not a docstring: drf-spectacular
# would publish a docstring as the description of every serializer below it.)
class ValidatedModelSerializer(StrictJSONTypes, serializers.ModelSerializer):

    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping,
                                models.TimeField: TimeOfDayField}

    # Written fields the serializer checks itself, where the model field's
    # own checks would only say the same again in other words.
    clean_exclude: tuple[str, ...] = ()

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        concrete = {field.name for field in self.Meta.model._meta.concrete_fields}
        written = {name: value for name, value in attrs.items() if name in concrete}
        instance = self._as_stored(written)
        # A related object was looked up (among those the caller may see) by its field already.
        looked_up = [name for name in written if isinstance(self.fields.get(name), serializers.RelatedField)]
        try:
            instance.full_clean(exclude=[*(concrete - written.keys()), *self.clean_exclude, *looked_up])
        except DjangoValidationError as exc:
            raise serializers.ValidationError(_keyed_by_field(exc)) from exc
        # clean() may normalise what it checks (a channel's target): that is what is saved.
        return {**attrs, **{name: getattr(instance, name) for name in written}}

    def _as_stored(self, written: dict) -> models.Model:
        if self.instance is None:
            return self.Meta.model(**written)
        # A copy: update() compares with the instance as stored (a monitor pauses
        # only when `paused` changes), and a refused request must not alter it.
        instance = copy.copy(self.instance)
        for name, value in written.items():
            setattr(instance, name, value)
        return instance


def _keyed_by_field(exc: DjangoValidationError) -> dict[str, list[str]]:
    return {api_settings.NON_FIELD_ERRORS_KEY if name == NON_FIELD_ERRORS else name: messages
            for name, messages in exc.message_dict.items()}


class PlainReads:
    """For a ModelSerializer that shows pages of rows: a field that shows a
    model column as stored (text, integer, float or boolean, under its own
    name) is read straight from the row, to the same output; every other
    field as DRF reads it. DRF's checks cost ~2 µs a field and row: a page
    of 100 monitors of 47 fields spent ~10 ms on them."""

    PLAIN_TYPES = {serializers.CharField: str, serializers.IntegerField: int, serializers.FloatField: float,
                   serializers.BooleanField: bool}

    def to_representation(self, instance):
        plan = self.__dict__.get("_plain_plan")
        if plan is None:
            plan = self._plain_plan = self._read_plan()
        out = {}
        for name, column, kind, field in plan:
            if column is not None:
                value = getattr(instance, column)
                # A value of the field's own type is shown as it is (str(s) is s, and so on).
                out[name] = value if value is None or type(value) is kind else field.to_representation(value)
                continue
            try:
                attribute = field.get_attribute(instance)
            except serializers.SkipField:
                continue
            # As DRF does: a related object shown by its key is None when it is.
            check = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            out[name] = None if check is None else field.to_representation(attribute)
        return out

    def _read_plan(self) -> list[tuple]:
        columns = {f.attname for f in self.Meta.model._meta.concrete_fields if not f.is_relation}
        plan = []
        for field in self._readable_fields:
            kind = self.PLAIN_TYPES.get(type(field))
            plain = kind is not None and field.source in columns and field.source_attrs == [field.source]
            plan.append((field.field_name, field.source if plain else None, kind, field))
        return plan


class DeclaredSerializer(ValidatedModelSerializer):
    """For a model a loopr.yaml can declare (loopr/declarative.py): its
    `slug`, checked unique among the team's objects of its type, and
    `managed`, which only applying a file sets."""

    def get_fields(self):
        fields = super().get_fields()
        if "slug" in fields:
            fields["slug"].required = False
            # Omitted, it stays as it is, on a PUT too: DRF's default for a
            # blank field ("") would make the save number it anew ("site-2").
            fields["slug"].default = serializers.empty
        if "managed" in fields:
            fields["managed"].read_only = True
        return fields

    def save(self, **kwargs):
        with slug_clash_as_400():
            return super().save(**kwargs)

    def get_validators(self) -> list:
        # DRF's own check of the (team, slug) constraint answers with a
        # non-field error before validate() runs: validate_slug_free names `slug`.
        return [validator for validator in super().get_validators()
                if "slug" not in getattr(validator, "fields", ())]

    # Whether validate() checks the slug is free in the team (a loopr.yaml's
    # serializers match objects by slug, so theirs always is).
    check_slug = True

    def validate(self, attrs: dict) -> dict:
        if self.check_slug:
            self.validate_slug_free(attrs)
        return super().validate(attrs)

    def validate_slug_free(self, attrs: dict) -> None:
        # Here, not in validate_slug: the team it must be unique in may be
        # written in the same request (TeamOwnedSerializer put it in attrs).
        slug = attrs.get("slug")
        moving = self.instance is not None and "team" in attrs and attrs["team"].pk != self.instance.team_id
        if not slug and moving:
            slug = self.instance.slug  # its slug must be free in the team it moves to too
        if slug:
            probe = self.instance if self.instance is not None else self.Meta.model()
            if probe.slug_taken(self.writer_team_id(attrs), slug):
                noun = self.Meta.model._meta.verbose_name
                raise serializers.ValidationError({"slug": [f"Another {noun} of its team has the slug {slug!r}."]})

    def writer_team_id(self, attrs: dict) -> int | None:
        """The team of the object being written: the one it is given, else
        its own when updating."""
        team = attrs.get("team")
        if team is not None:
            return team.pk
        if self.instance is not None:
            return self.instance.team_id
        return None


@contextmanager
def slug_clash_as_400():
    """A slug given in the request that another writer took meanwhile (the
    check in validate() saw it free): a 400 naming `slug`, not a 500."""
    try:
        yield
    except SlugTaken as exc:
        raise serializers.ValidationError(
            {"slug": ["Taken meanwhile by another object of its team and type: choose another."]}) from exc


class UtcDateTimeField(IsoDateTimeField):
    def to_python(self, value: str | None) -> datetime | None:
        # A time without an offset is UTC, as every time the API writes is,
        # not the TIME_ZONE of the admin and of beat.
        with django_timezone.override(timezone.utc):
            parsed = super().to_python(value)
        if parsed is not None:
            try:
                # The database compares in UTC: 0001-01-01T00:00+05:00 has no
                # UTC equivalent and would fail inside the query, as a 500;
                # and PostgreSQL refuses an offset beyond ±15:59 (-20:00 is
                # valid ISO 8601), so the query gets the time in UTC.
                parsed = parsed.astimezone(timezone.utc)
            except OverflowError as exc:
                raise forms.ValidationError("Out of range once converted to UTC.", code="invalid") from exc
        return parsed


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class StrictBooleanField(forms.Field):
    """true/false (or 1/0, yes/no, on/off); anything else is a 400, where
    django-filter's own boolean filter ignores junk like `paused=1134` and
    answers as if no filter had been given."""

    TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}

    def to_python(self, value: str | None) -> bool | None:
        if value in (None, ""):
            return None
        lowered = str(value).lower()
        if lowered in self.TRUE or lowered in self.FALSE:
            return lowered in self.TRUE
        raise forms.ValidationError("Expected true or false.", code="invalid")


class StrictBooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField

    def __init__(self, *args, **kwargs):
        # django-filter's BooleanWidget turns anything but true/false into
        # None before the field sees it: the raw text, please.
        kwargs.setdefault("widget", forms.TextInput)
        super().__init__(*args, **kwargs)


class IdField(forms.IntegerField):
    # A whole number in the range of a database id: "1.5" or 10**30 is a 400,
    # not a silently rounded match or an overflow inside the query.
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 2**63 - 1})
class IdFilter(filters.NumberFilter):
    field_class = IdField

