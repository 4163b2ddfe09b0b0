"""/api/v1/config/: a loopr.yaml's schema, plan, apply and export."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from ..document import FileInvalid, Problem, dumped, parse, read
from ..planning import Conflict, apply, exported, plan
from ..schema import file_schema
from ..scope import ScopeError, scope_for


def _invalid(problems: list[Problem]) -> Response:
    return Response({"errors": [p.as_dict() for p in problems]}, status=status.HTTP_400_BAD_REQUEST)


def _document_and_scope(request):
    data = parse(request.body, request.content_type or "")
    document = read(data)
    try:
        scope = scope_for(request.user, document.team)
    except ScopeError as exc:
        raise FileInvalid([Problem("team", str(exc))]) from exc
    return document, scope


@extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
@api_view(["POST"])
def plan_view(request):
    """What applying the file (YAML, or the same structure as JSON) would
    change, with a revision to apply it by; nothing is written."""
    try:
        document, scope = _document_and_scope(request)
        outcome = plan(scope, document)
    except FileInvalid as exc:
        return _invalid(exc.problems)
    return Response({"revision": outcome.revision, "changes": [c.as_dict() for c in outcome.changes]})


@extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
@api_view(["POST"])
def apply_view(request):
    """The planned changes, made in one transaction: the same file plus its
    plan's `revision`. 409 if the objects or the file changed since the plan."""
    try:
        document, scope = _document_and_scope(request)
        if not document.revision:
            raise FileInvalid([Problem("revision", "Required: the revision of the plan being applied.")])
        outcome = apply(scope, document)
    except FileInvalid as exc:
        return _invalid(exc.problems)
    except Conflict as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return Response({"revision": outcome.revision, "changes": [c.as_dict() for c in outcome.changes]})


@extend_schema(parameters=[OpenApiParameter("team", str, description="Left out: your own objects."),
                           OpenApiParameter("format", str, enum=["yaml", "json"])],
               responses=OpenApiTypes.OBJECT)
@api_view(["GET"])
def export_view(request):
    """The objects as a loopr.yaml that applies with no change; channels'
    secrets are never in it."""
    try:
        scope = scope_for(request.user, request.query_params.get("team"))
    except ScopeError as exc:
        return _invalid([Problem("team", str(exc))])
    document = exported(scope)
    if request.query_params.get("format") == "json":
        return Response(document)
    return HttpResponse(dumped(document), content_type="application/yaml; charset=utf-8")


@extend_schema(responses=OpenApiTypes.OBJECT)
@api_view(["GET"])
@permission_classes([AllowAny])
def schema_view(request):
    """The JSON Schema of a loopr.yaml (for editors and CI)."""
    return Response(file_schema())
