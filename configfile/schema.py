"""The JSON Schema of a loopr.yaml, made from the serializers that read it:
a field added to the API is in the schema with its type, bounds, choices
and help text, with nothing to keep in step by hand."""

from __future__ import annotations

from django.core import validators
from rest_framework import serializers

from .document import FORMAT_VERSION, SECTIONS, SETTINGS_KEYS

SCHEMA_ID = "https://loopr.invalid/schemas/loopr.yaml.json"


def file_schema() -> dict:
    sections = {section.key: {
        "type": "array",
        "description": f"The {section.model._meta.verbose_name_plural} of the file, each keyed by its slug.",
        "items": _object_schema(section.serializer()),
    } for section in SECTIONS}
    settings = {
        "version": {"const": FORMAT_VERSION, "description": SETTINGS_KEYS["version"]},
        "team": {"type": ["integer", "string", "null"], "description": SETTINGS_KEYS["team"]},
        "prune": {"type": "boolean", "description": SETTINGS_KEYS["prune"]},
        "revision": {"type": "string", "description": SETTINGS_KEYS["revision"]},
        "variables": {"type": "object", "additionalProperties": {"type": "string"},
                      "description": SETTINGS_KEYS["variables"]},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "loopr.yaml",
        "description": "Monitoring as code: one team's monitors, channels, escalation policies and maintenance "
                       "windows. POST it to /api/v1/config/plan/, then /api/v1/config/apply/.",
        "type": "object",
        "additionalProperties": False,
        "properties": {**settings, **sections},
    }


def _object_schema(serializer: serializers.Serializer) -> dict:
    properties, required = {}, ["slug"]
    for name, field in serializer.fields.items():
        if field.read_only:
            continue
        properties[name] = field_schema(field)
    return {"type": "object", "additionalProperties": False, "required": required, "properties": properties}


def field_schema(field: serializers.Field) -> dict:
    schema = _type_of(field)
    if getattr(field, "allow_null", False) and "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = [*types, "null"]
    if field.help_text:
        schema["description"] = str(field.help_text)
    return schema


def _type_of(field: serializers.Field) -> dict:
    if isinstance(field, serializers.ManyRelatedField):
        schema = {"type": "array", "items": _type_of(field.child_relation), "uniqueItems": True}
        if not field.allow_empty:
            schema["minItems"] = 1
        return schema
    if isinstance(field, serializers.ListField):
        schema = {"type": "array", "items": _type_of(field.child)}
        if field.max_length is not None:
            schema["maxItems"] = field.max_length
        return schema
    if isinstance(field, serializers.ChoiceField):
        values = [value for value in field.choices if value != ""]
        if getattr(field, "allow_blank", False):
            values.append("")
        return {"enum": values}
    if isinstance(field, serializers.BooleanField):
        return {"type": "boolean"}
    if isinstance(field, serializers.IntegerField):
        return _bounded({"type": "integer"}, field)
    if isinstance(field, (serializers.FloatField, serializers.DecimalField)):
        return _bounded({"type": "number"}, field)
    if isinstance(field, serializers.DateTimeField):
        return {"type": "string", "format": "date-time"}
    if isinstance(field, serializers.TimeField):
        return {"type": "string", "pattern": r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$"}
    if isinstance(field, serializers.JSONField):
        return {}  # any JSON: the model's validators say more, in their messages
    if isinstance(field, (serializers.CharField, serializers.RelatedField)):
        schema: dict = {"type": "string"}
        if isinstance(field, serializers.SlugField) or getattr(field, "slug_field", None) == "slug":
            schema["pattern"] = r"^[-a-zA-Z0-9_]+$"
        max_length = getattr(field, "max_length", None)
        if max_length:
            schema["maxLength"] = max_length
        if isinstance(field, serializers.CharField) and not field.allow_blank:
            schema["minLength"] = 1
        return schema
    return {}


def _bounded(schema: dict, field: serializers.Field) -> dict:
    low, high = getattr(field, "min_value", None), getattr(field, "max_value", None)
    for validator in field.validators:
        if isinstance(validator, validators.MinValueValidator):
            low = validator.limit_value if low is None else max(low, validator.limit_value)
        if isinstance(validator, validators.MaxValueValidator):
            high = validator.limit_value if high is None else min(high, validator.limit_value)
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return schema
