"""API pieces shared by every app's viewsets."""

from __future__ import annotations

from datetime import datetime, timezone

from django import forms
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:  # DRF turns only ValueError into a 400
            raise ParseError("JSON parse error - nested too deeply.") from exc


class OwnedByUser:
    """Per-user visibility for a viewset: `queryset` narrowed by the model's
    `owned_by(user)` (another user's object is then a 404), and new objects
    owned by the caller."""

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return queryset.none()
        return queryset.owned_by(self.request.user)

    def perform_create(self, serializer) -> None:
        serializer.save(owner=self.request.user)


class UtcDateTimeField(IsoDateTimeField):
    def to_python(self, value: str | None) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is not None:
            try:
                # The database compares in UTC: 0001-01-01T00:00+05:00 has no
                # UTC equivalent and would fail inside the query, as a 500.
                parsed.astimezone(timezone.utc)
            except OverflowError as exc:
                raise forms.ValidationError("Out of range once converted to UTC.", code="invalid") from exc
        return parsed


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class IdField(forms.IntegerField):
    # A whole number in the range of a database id: "1.5" or 10**30 is a 400,
    # not a silently rounded match or an overflow inside the query.
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class IdFilter(filters.NumberFilter):
    field_class = IdField

