"""/api/v1/config/: a loopr.yaml's schema, plan, apply and export."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, status
from rest_framework.decorators import api_view, authentication_classes, permission_classes, renderer_classes
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from loopr.api import JSONRenderer, TokenScopePermission, token_team
from loopr.schema import error_response
from teams.choices import Role

from ..document import FileInvalid, Problem, dumped, parse, read
from ..planning import Conflict, apply, exported, plan
from ..schema import file_schema
from ..scope import Scope, ScopeError, ScopeForbidden, scope_for


def _invalid(problems: list[Problem]) -> Response:
    return Response({"errors": [p.as_dict() for p in problems]}, status=status.HTTP_400_BAD_REQUEST)


def _forbidden(exc: ScopeForbidden) -> Response:
    return Response({"detail": str(exc), "errors": [Problem("team", str(exc)).as_dict()]},
                    status=status.HTTP_403_FORBIDDEN)


def _scope(request, team: object, role: str) -> Scope:
    """The team the file is for: plan and export need its viewer role, apply its editor role."""
    try:
        return scope_for(request.user, team, role, token_team=token_team(request), request=request)
    except ScopeError as exc:
        raise FileInvalid([Problem("team", str(exc))]) from exc


def _document_and_scope(request, role: str):
    data = parse(request.body, request.content_type or "")
    document = read(data)
    return document, _scope(request, document.team, role)


@extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
@api_view(["POST"])
def plan_view(request):
    """What applying the file (YAML, or the same structure as JSON) would
    change, with a revision to apply it by; nothing is written."""
    try:
        document, scope = _document_and_scope(request, Role.VIEWER)
        outcome = plan(scope, document)
    except FileInvalid as exc:
        return _invalid(exc.problems)
    except ScopeForbidden as exc:
        return _forbidden(exc)
    return Response({"revision": outcome.revision, "changes": [c.as_dict() for c in outcome.changes]})


@extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
@api_view(["POST"])
# A read token may plan (a plan writes nothing: CI can show it on a pull
# request with read-only credentials) but never apply.
@permission_classes([IsAuthenticated, TokenScopePermission])
def apply_view(request):
    """The planned changes, made in one transaction: the same file plus its
    plan's `revision`. 409 if the objects or the file changed since the plan."""
    try:
        document, scope = _document_and_scope(request, Role.EDITOR)
        if not document.revision:
            raise FileInvalid([Problem("revision", "Required: the revision of the plan being applied.")])
        outcome = apply(scope, document)
    except FileInvalid as exc:
        return _invalid(exc.problems)
    except ScopeForbidden as exc:
        return _forbidden(exc)
    except Conflict as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return Response({"revision": outcome.revision, "changes": [c.as_dict() for c in outcome.changes]})


class YAMLRenderer(renderers.BaseRenderer):
    """A loopr.yaml as YAML: export's default, and `?format=yaml`."""

    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code >= 400:
            # An error is JSON, as everywhere in the API, whatever format the file would have had.
            response["Content-Type"] = "application/json"
            return JSONRenderer().render(data, "application/json", renderer_context)
        return dumped(data).encode(self.charset)


@extend_schema(parameters=[OpenApiParameter("team", int, description="The team's id; left out: your personal team "
                                                           "(a team token's team)."),
                           OpenApiParameter("format", str, enum=["yaml", "json"],
                                            description="yaml (the default) or json; also by the Accept header.")],
               responses={200: OpenApiTypes.OBJECT,
                          404: error_response("`format` names neither yaml nor json.")})
@api_view(["GET"])
# DRF reads `?format=` itself, before the view, to choose the renderer: YAML
# must be one of them, or `?format=yaml` would be a 404.
@renderer_classes([YAMLRenderer, JSONRenderer])
def export_view(request):
    """The objects as a loopr.yaml that applies with no change; channels'
    secrets are never in it."""
    try:
        scope = _scope(request, request.query_params.get("team"), Role.VIEWER)
    except FileInvalid as exc:
        return _invalid(exc.problems)
    except ScopeForbidden as exc:
        return _forbidden(exc)
    return Response(exported(scope))


@extend_schema(responses=OpenApiTypes.OBJECT)
@api_view(["GET"])
@permission_classes([AllowAny])
# A public document: whatever credentials come along are not even read (a
# stale token in an editor's settings must not turn it into a 401).
@authentication_classes([])
def schema_view(request):
    """The JSON Schema of a loopr.yaml (for editors and CI)."""
    return Response(file_schema())
