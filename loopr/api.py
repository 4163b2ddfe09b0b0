"""API pieces shared by every app's viewsets."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:  # DRF turns only ValueError into a 400
            raise ParseError("JSON parse error - nested too deeply.") from exc
