from __future__ import annotations

from contextlib import contextmanager

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from django_filters import rest_framework as filters

from loopr.api import IdFilter, TokenScopePermission, UtcDateTimeFilter, token_team

from .. import audit, invitations, throttling
from ..choices import Role
from ..models import ApiToken, AuditEntry, Invitation, Membership, Team
from .serializers import (
    AuditEntrySerializer,
    InvitationSerializer,
    MemberSerializer,
    NewTokenSerializer,
    TeamSerializer,
    TokenSerializer,
)


class EmailNotSent(exceptions.APIException):
    status_code = 503
    default_detail = "The invitation's email could not be sent; nothing was saved. Try again later."
    default_code = "email_not_sent"


def require(request, team: Team, role: str, doing: str) -> None:
    """A 403 unless the caller holds at least `role` in `team` (DRF answers Django's PermissionDenied so)."""
    team.require(request.user, role, doing)


@contextmanager
def refusals_as_400():
    """A rule of the team's (teams/models.py) that no role may break: a 400 naming its field."""
    try:
        yield
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict) from exc


class TeamViewSet(viewsets.ModelViewSet):
    """Your teams, each with your `role`. Whoever creates a team owns it."""

    serializer_class = TeamSerializer
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]
    throttle_scope = throttling.INVITATIONS

    def get_throttles(self):
        # Only sending invitations is throttled: each one is an email to an
        # address the caller chose.
        sending = self.action == "invitations" and self.request.method == "POST"
        return [ScopedRateThrottle()] if sending else []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Team.objects.none()
        teams = Team.objects.of(self.request.user).with_role_of(self.request.user)
        team = token_team(self.request)
        return teams if team is None else teams.filter(pk=team)

    def perform_create(self, serializer) -> None:
        if token_team(self.request) is not None:
            raise exceptions.PermissionDenied("A team token cannot create teams.")
        with transaction.atomic():
            team = serializer.save()
            Membership.objects.create(team=team, user=self.request.user, role=Role.OWNER)
            audit.record(self.request, "create", team)
        team.caller_role = Role.OWNER

    def perform_update(self, serializer) -> None:
        serializer.instance.check_rename(self.request.user)
        with audit.change(self.request, serializer.instance):
            serializer.save()

    def perform_destroy(self, team: Team) -> None:
        with refusals_as_400():
            team.check_delete(self.request.user)
        with transaction.atomic():
            audit.record(self.request, "delete", team)  # kept, its team then empty
            team.delete()

    @extend_schema(request=MemberSerializer, responses=MemberSerializer(many=True))
    @action(detail=True, methods=["get", "post"], serializer_class=MemberSerializer)
    def members(self, request, pk=None):
        """The team's members; POST adds one (`username` or `email`, and `role`): admins add any role but owner."""
        team = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(team.memberships.select_related("user").order_by("user__username", "id"))
            return self.get_paginated_response(MemberSerializer(page, many=True).data)
        require(request, team, Role.ADMIN, "add members")
        serializer = MemberSerializer(data=request.data, context={**self.get_serializer_context(), "team": team})
        serializer.is_valid(raise_exception=True)
        team.check_member_changes(request.user, added=[serializer.validated_data["role"]])
        with transaction.atomic():
            membership = serializer.save(team=team)
            audit.member_added(request, membership)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MemberSerializer, responses=MemberSerializer,
                   parameters=[OpenApiParameter("member_id", int, OpenApiParameter.PATH, description="The member's id.")])
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<member_id>[0-9]+)",
            serializer_class=MemberSerializer)
    def member(self, request, pk=None, member_id=None):
        """Change a member's role, or remove them (anyone may leave). The last owner stays: demoting or removing them is a 400."""
        team = self.get_object()
        membership = get_object_or_404(team.memberships.select_related("user"), pk=member_id)
        if request.method == "DELETE":
            with transaction.atomic():
                with refusals_as_400():
                    team.check_member_changes(request.user, [(membership, None)])
                audit.member_removed(request, membership)
                membership.delete()
            return Response(status=status.HTTP_204_NO_CONTENT)
        # Whether they may change this member at all, before what they send is read.
        team.check_member_changes(request.user, [(membership, membership.role)])
        serializer = MemberSerializer(membership, data=request.data, partial=True,
                                      context={**self.get_serializer_context(), "team": team})
        serializer.is_valid(raise_exception=True)
        old = membership.role
        with transaction.atomic():
            with refusals_as_400():
                team.check_member_changes(request.user, [(membership, serializer.validated_data.get("role", old))])
            membership = serializer.save()
            audit.member_changed(request, membership, old)
        return Response(MemberSerializer(membership).data)

    @extend_schema(request=InvitationSerializer, responses=InvitationSerializer(many=True))
    @action(detail=True, methods=["get", "post"], serializer_class=InvitationSerializer)
    def invitations(self, request, pk=None):
        """The team's pending invitations (admins and owners); POST sends one (`email`, `role`) by email:
        a link that works once, for LOOPR_INVITATION_MAX_AGE. Admins invite any role but owner."""
        team = self.get_object()
        require(request, team, Role.ADMIN, "invite members")
        if request.method == "GET":
            page = self.paginate_queryset(team.invitations.pending().order_by("-created_at", "-id"))
            return self.get_paginated_response(InvitationSerializer(page, many=True).data)
        serializer = InvitationSerializer(data=request.data, context={**self.get_serializer_context(), "team": team})
        serializer.is_valid(raise_exception=True)
        invitation = Invitation(team=team, **serializer.validated_data)
        try:
            invitations.invite(request, invitation)
        except invitations.EmailNotSent as exc:
            raise EmailNotSent() from exc
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None},
                   parameters=[OpenApiParameter("invitation_id", int, OpenApiParameter.PATH,
                                                description="The invitation's id.")])
    @action(detail=True, methods=["delete"], url_path=r"invitations/(?P<invitation_id>[0-9]+)")
    def invitation(self, request, pk=None, invitation_id=None):
        """Revoke a pending invitation: its link stops working at once."""
        team = self.get_object()
        require(request, team, Role.ADMIN, "revoke invitations")
        invitation = get_object_or_404(team.invitations.pending(), pk=invitation_id)
        team.check_grant(request.user, invitation.role, "revoke invitations of")
        with transaction.atomic():
            audit.invitation_revoked(request, invitation)
            invitation.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                   mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """API tokens: yours, and those of the teams you administer. The key is
    in the creation answer only; DELETE revokes at once."""

    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]
    throttle_scope = throttling.TOKENS

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        tokens = ApiToken.objects.manageable_by(self.request.user).select_related("team")
        team = token_team(self.request)
        return tokens if team is None else tokens.filter(team=team)

    def get_serializer_class(self):
        return NewTokenSerializer if self.action == "create" else TokenSerializer

    def perform_create(self, serializer) -> None:
        with transaction.atomic():
            audit.token_created(self.request, serializer.save())

    def perform_destroy(self, token: ApiToken) -> None:
        with transaction.atomic():
            audit.token_revoked(self.request, token)
            token.delete()

    def get_throttles(self):
        # Only making tokens is throttled: a script that leaks one key at a
        # time should not be able to mint thousands.
        return [ScopedRateThrottle()] if self.action == "create" else []


class AuditEntryFilter(filters.FilterSet):
    team = IdFilter(field_name="team_id")
    object_type = filters.CharFilter(help_text="e.g. monitor, channel, maintenancewindow, membership, apitoken.")
    actor = filters.CharFilter(field_name="actor_name", help_text="A username.")
    since = UtcDateTimeFilter(field_name="at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["team", "object_type", "actor", "action", "since", "until"]


class AuditLogViewSet(viewsets.ReadOnlyModelViewSet):
    """Who changed what, newest first: the log of the teams you are an
    admin or owner of (anyone else: 403)."""

    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilter
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AuditEntry.objects.none()
        user = self.request.user
        entries = AuditEntry.objects.all()
        if not user.is_superuser:
            administered = Team.objects.administered_by(user)
            if not administered.exists() or self._asks_for_a_team_below_admin(administered):
                raise exceptions.PermissionDenied("The audit log is for a team's admins and owners.")
            entries = entries.filter(team__in=administered)
        team = token_team(self.request)
        return entries if team is None else entries.filter(team=team)

    def _asks_for_a_team_below_admin(self, administered) -> bool:
        asked = self.request.query_params.get("team", "")
        if not asked.isdigit():
            return False  # the filter answers 400
        mine = Team.objects.of(self.request.user).filter(pk=asked)
        return mine.exists() and not administered.filter(pk=asked).exists()
