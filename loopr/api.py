"""API pieces shared by every app's viewsets."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
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


class PageNumberPagination(pagination.PageNumberPagination):
    """Every list's pages (`PAGE_SIZE` rows), `page_size` up to MAX_PAGE_SIZE."""

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


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


# Runs the model's own validation, as NetBox's serializer of that name does:
# `full_clean()` on the object as it would be stored, so that the API keeps
# the rules the admin's forms keep (they call it too). Its errors become a 400
# keyed by field, like the serializer's own. Fields the request does not write
# are left out of the field checks (the owner is set only when saving; a
# partial update keeps what is stored), as are `clean_exclude`; `clean()`
# always sees the whole object. (A comment, not a docstring: drf-spectacular
# would publish a docstring as the description of every serializer below it.)
class ValidatedModelSerializer(serializers.ModelSerializer):

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


class DeclaredSerializer(ValidatedModelSerializer):
    """For a model a loopr.yaml can declare (loopr/declarative.py): its
    `slug`, checked unique among the owner's objects of its type, and
    `managed`, which only applying a file sets."""

    def get_fields(self):
        fields = super().get_fields()
        if "slug" in fields:
            fields["slug"].required = False
        if "managed" in fields:
            fields["managed"].read_only = True
        return fields

    def validate_slug(self, slug: str) -> str:
        if slug:
            probe = self.instance if self.instance is not None else self.Meta.model()
            if probe.slug_taken(self.writer_owner_id(), slug):
                noun = self.Meta.model._meta.verbose_name
                raise serializers.ValidationError(f"Another {noun} of yours has the slug {slug!r}.")
        return slug

    def writer_owner_id(self) -> int:
        """The owner of the object being written: its own when updating, else
        the context's `owner` (a loopr.yaml's scope) or the caller."""
        if self.instance is not None:
            return self.instance.owner_id
        owner = self.context.get("owner") or self.context["request"].user
        return owner.pk


class UtcDateTimeField(IsoDateTimeField):
    def to_python(self, value: str | None) -> datetime | None:
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


class IdFilter(filters.NumberFilter):
    field_class = IdField

