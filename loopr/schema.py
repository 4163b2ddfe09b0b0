"""The OpenAPI schema's error responses, written once for every operation.

drf-spectacular documents only the success of each operation; a client (and
schemathesis, which the test suite runs against this schema) needs the
failures too. They follow from what the operation takes, so they are added
here rather than by an `extend_schema` on each view:

* 400 where it takes a body or query parameters: validation errors keyed by
  field (`{"url": ["…"]}`), `non_field_errors`, the position of a refused
  item in a bulk create (`{"3": {"url": ["…"]}}`), or `{"detail": …}` for a
  body that is not JSON;
* 401 and 403 where a login is required (no or a bad token; a permission or
  CSRF refused);
* 404 where it takes an id in the path (another user's object is a 404 too),
  or returns pages (a page past the last, a wrong cursor);
* 429 where it is throttled;
* 414 where it takes parameters: a URL too long for the web server.

Codes an operation declares itself (`extend_schema(responses={409: …})`)
are kept as declared.

And each field's rules, where drf-spectacular leaves them out or gets them
wrong: a JSON field is the type of its model default (an object or a list,
never null unless the field allows it), a list of ids that may not be empty
says so, a choice whose stored value may be blank lists "" among its values
(DRF drops `allow_blank` from read-only fields), a time of day is the
pattern the API reads and writes (not `format: time`, which needs an
offset), a free-text filter excludes NUL.
"""

from __future__ import annotations

import copy

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular import openapi
from drf_spectacular.drainage import has_override
from drf_spectacular.plumbing import ResolvedComponent, append_meta
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from .wireformats import TIME_OF_DAY_PATTERN

ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# A validation error is an object of field names (or list positions) to
# messages, nested as the request was; or {"detail": …} for an unreadable body.
VALIDATION_ERROR = {"type": "object", "additionalProperties": {}}
# Django's form fields refuse a NUL in text (PostgreSQL cannot store one):
# every free-text query parameter (a filter's, or a query serializer's) says so.
NO_NUL_PATTERN = "^[^\\u0000]*$"


def error_response(description: str) -> OpenApiResponse:
    """For a view's own error codes (`extend_schema(responses={409: …})`)."""
    return OpenApiResponse(response=ERROR, description=description)


DESCRIPTIONS = {
    "400": "The request is refused; the body names each wrong field (or parameter) and why.",
    "401": "No credentials, or wrong ones.",
    "403": "Not allowed (a permission, or CSRF on a session login).",
    "404": "No such object (or not yours), or no such page.",
    "429": "Too many requests; `Retry-After` says when to try again.",
    "414": "The URL is longer than the web server takes (4,094 bytes for the request line).",
}


class AutoSchema(openapi.AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        parameters = operation.get("parameters", [])
        # A pagination cursor is opaque, and a wrong one (NUL or not) is a 404.
        paginator = self._get_paginator()
        paging = {p["name"] for p in paginator.get_schema_operation_parameters(self.view)} if paginator else set()
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if (parameter["in"] == "query" and parameter["name"] not in paging and schema.get("type") == "string"
                    and not {"enum", "format", "pattern"} & schema.keys()):
                schema["pattern"] = NO_NUL_PATTERN
        codes = []
        # A write can be refused for the state it meets (rotating the secret of
        # a channel that has none) even when it carries no body.
        if self.method in ("POST", "PUT", "PATCH") or any(p["in"] == "query" for p in parameters):
            codes.append("400")
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            codes += ["401", "403"]
        if any(p["in"] == "path" for p in parameters) or self._get_paginator() is not None:
            codes.append("404")
        if self.view.get_throttles():
            codes.append("429")
        responses = operation.setdefault("responses", {})
        # An error comes in the format asked for, as the answer would (the
        # series as CSV: a CSV of field and error).
        media_types = {media for answer in responses.values() for media in answer.get("content", {})}
        for code in codes:
            if code not in responses:
                responses[code] = {"description": DESCRIPTIONS[code], "content": {
                    media: {"schema": self._error_component(code) if "json" in media else {"type": "string"}}
                    for media in sorted(media_types or {"application/json"})}}
        if parameters:
            # Refused by the web server (gunicorn's limit_request_line) before
            # Loopr sees it, with the server's own page.
            responses.setdefault("414", {"description": DESCRIPTIONS["414"],
                                         "content": {"text/html": {"schema": {"type": "string"}}}})
        return operation

    def _error_component(self, code: str) -> dict:
        name, schema = ("ValidationError", VALIDATION_ERROR) if code == "400" else ("Error", ERROR)
        component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema)
        self.registry.register_on_missing(component)
        return component.ref

    def _get_filter_parameters(self):
        # django-filter reads an empty value as no filter (the browsable
        # API's filter form sends every field, most of them empty).
        parameters = super()._get_filter_parameters()
        for parameter in parameters:
            parameter["allowEmptyValue"] = True
        return parameters

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        stored = _model_field(field)
        if isinstance(field, serializers.ChoiceField):
            if not field.allow_blank and getattr(stored, "blank", False) and stored.get_internal_type() in (
                    "CharField", "TextField"):
                field = copy.copy(field)
                field.allow_blank = True
        if isinstance(field, serializers.TimeField):
            return append_meta({"type": "string", "pattern": TIME_OF_DAY_PATTERN},
                               self._get_serializer_field_meta(field, direction))
        if (isinstance(field, serializers.JSONField) and not has_override(field, "field")
                and callable(getattr(stored, "default", None))):
            kind = {list: "array", dict: "object"}.get(type(stored.default()))
            if kind:
                return append_meta({"type": kind}, self._get_serializer_field_meta(field, direction))
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, serializers.ManyRelatedField) and not field.allow_empty and direction == "request":
            schema = {**schema, "minItems": 1}
        return schema


def _model_field(field):
    """The model field a ModelSerializer's field reads, if any."""
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    if model is None or not isinstance(field.source, str) or "." in field.source:
        return None
    try:
        return model._meta.get_field(field.source)
    except FieldDoesNotExist:
        return None
