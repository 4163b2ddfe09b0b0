"""API pieces shared by every app's viewsets."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.utils import timezone as django_timezone
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field
from rest_framework import pagination, parsers, serializers
from rest_framework.exceptions import ParseError
from rest_framework.settings import api_settings


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:  # DRF turns only ValueError into a 400
            raise ParseError("JSON parse error - nested too deeply.") from exc


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


class OwnedByUser:
    """Per-user visibility for a viewset: `queryset` narrowed by the model's
    `owned_by(user)` (another user's object is then a 404), and new objects
    owned by the caller."""

    def get_queryset(self):
        return self.visible(super().get_queryset())

    def visible(self, queryset: models.QuerySet) -> models.QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return queryset.none()
        return queryset.owned_by(self.request.user)

    def perform_create(self, serializer) -> None:
        serializer.save(owner=self.request.user)


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


# Runs the model's own validation, as NetBox's serializer of that name does:
# `full_clean()` on the object as it would be stored, so that the API keeps
# the rules the admin's forms keep (they call it too). Its errors become a 400
# keyed by field, like the serializer's own. Fields the request does not write
# are left out of the field checks (the owner is set only when saving; a
# partial update keeps what is stored), as are `clean_exclude`; `clean()`
# always sees the whole object. (A comment, not a docstring: drf-spectacular
# would publish a docstring as the description of every serializer below it.)
class ValidatedModelSerializer(StrictJSONTypes, serializers.ModelSerializer):

    # Written fields the serializer checks itself, where the model field's
    # own checks would only say the same again in other words.
    clean_exclude: tuple[str, ...] = ()

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        concrete = {field.name for field in self.Meta.model._meta.concrete_fields}
        written = {name: value for name, value in attrs.items() if name in concrete}
        instance = self._as_stored(written)
        try:
            instance.full_clean(exclude=[*(concrete - written.keys()), *self.clean_exclude])
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

