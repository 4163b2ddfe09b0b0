"""Formats of values on the API's wire, defined once for the fields that
read them (loopr.api) and the schema that publishes them (loopr.schema)."""

# A time of day (a weekly window's start, quiet hours): what DRF writes
# (`isoformat()`, no offset) and all that the API reads. OpenAPI's
# `format: time` is RFC 3339's full-time, which needs an offset.
TIME_OF_DAY_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"
