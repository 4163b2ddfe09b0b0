from __future__ import annotations

from django.db import models, transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from django_filters import rest_framework as filters

from loopr.api import IdFilter, TokenScopePermission, UtcDateTimeFilter, token_team

from .. import audit, invitations
from ..choices import Role
from ..models import ApiToken, AuditEntry, Membership, Team
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
    """A 403 unless the caller holds at least `role` in `team`."""
    held = Role.OWNER if request.user.is_superuser else getattr(team, "caller_role", None)
    if Role.rank(held) < Role.rank(role):
        raise exceptions.PermissionDenied(f"Only a team's {role}s or above may {doing}; your role is {held}.")


class TeamViewSet(viewsets.ModelViewSet):
    """Your teams, each with your `role`. Whoever creates a team owns it."""

    serializer_class = TeamSerializer
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]
    throttle_scope = "invitation-create"

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
            audit.record(self.request, "create", team, team_id=team.pk)
        team.caller_role = Role.OWNER

    def perform_update(self, serializer) -> None:
        require(self.request, serializer.instance, Role.OWNER, "rename the team")
        before = audit.snapshot(serializer.instance)
        with transaction.atomic():
            team = serializer.save()
            audit.record(self.request, "update", team, audit.diff(before, audit.snapshot(team)), team_id=team.pk)

    def perform_destroy(self, team: Team) -> None:
        require(self.request, team, Role.OWNER, "delete the team")
        if team.is_personal:
            raise serializers.ValidationError({"team": ["A personal team goes only with its user."]})
        with transaction.atomic():
            audit.record(self.request, "delete", team, team_id=team.pk)  # kept, its team then empty
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
        if serializer.validated_data["role"] == Role.OWNER:
            require(request, team, Role.OWNER, "add owners")
        with transaction.atomic():
            membership = serializer.save(team=team)
            audit.record(request, "member-add", membership, {"role": [None, membership.role]}, team_id=team.pk)
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MemberSerializer, responses=MemberSerializer,
                   parameters=[OpenApiParameter("member_id", int, OpenApiParameter.PATH, description="The member's id.")])
    @action(detail=True, methods=["patch", "delete"], url_path=r"members/(?P<member_id>[0-9]+)",
            serializer_class=MemberSerializer)
    def member(self, request, pk=None, member_id=None):
        """Change a member's role, or remove them (anyone may leave). The last owner stays: demoting or removing them is a 400."""
        team = self.get_object()
        membership = get_object_or_404(team.memberships.select_related("user"), pk=member_id)
        leaving = request.method == "DELETE" and membership.user_id == request.user.pk
        if not leaving:
            require(request, team, Role.ADMIN, "change members")
        if membership.role == Role.OWNER and not leaving:
            require(request, team, Role.OWNER, "change or remove owners")
        if request.method == "DELETE":
            if membership.is_last_owner():
                raise serializers.ValidationError({"role": ["The team's last owner cannot leave; make another owner first."]})
            with transaction.atomic():
                audit.record(request, "member-remove", membership, {"role": [membership.role, None]},
                             team_id=team.pk)
                membership.delete()
            return Response(status=status.HTTP_204_NO_CONTENT)
        serializer = MemberSerializer(membership, data=request.data, partial=True,
                                      context={**self.get_serializer_context(), "team": team})
        serializer.is_valid(raise_exception=True)
        role = serializer.validated_data.get("role", membership.role)
        if role == Role.OWNER:
            require(request, team, Role.OWNER, "make owners")
        if membership.role == Role.OWNER and role != Role.OWNER and membership.is_last_owner():
            raise serializers.ValidationError({"role": ["The team's last owner cannot be demoted; make another owner first."]})
        old = membership.role
        with transaction.atomic():
            membership = serializer.save()
            audit.record(request, "member-change", membership, {"role": [old, membership.role]}, team_id=team.pk)
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
        if serializer.validated_data["role"] == Role.OWNER:
            require(request, team, Role.OWNER, "invite owners")
        try:
            with transaction.atomic():
                invitation = serializer.save(team=team)
                audit.record(request, "invite", invitation, {"email": [None, invitation.email],
                                                            "role": [None, invitation.role]}, team_id=team.pk)
                # Inside the transaction: an email that could not be sent leaves no invitation behind.
                invitations.send(invitation, invitations.link(request, serializer.new_key))
        except OSError as exc:  # smtplib's errors, refused connections and timeouts
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
        if invitation.role == Role.OWNER:
            require(request, team, Role.OWNER, "revoke invitations of owners")
        with transaction.atomic():
            audit.record(request, "invite-revoke", invitation, {"email": [invitation.email, None]}, team_id=team.pk)
            invitation.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                   mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """API tokens: yours, and those of the teams you administer. The key is
    in the creation answer only; DELETE revokes at once."""

    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]
    throttle_scope = "token-create"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        user = self.request.user
        tokens = ApiToken.objects.select_related("team")
        if not user.is_superuser:
            administered = Team.objects.of(user, Role.ADMIN)
            tokens = tokens.filter(models.Q(user=user) | models.Q(team__in=administered))
        team = token_team(self.request)
        return tokens if team is None else tokens.filter(team=team)

    def get_serializer_class(self):
        return NewTokenSerializer if self.action == "create" else TokenSerializer

    def perform_create(self, serializer) -> None:
        with transaction.atomic():
            token = serializer.save()
            audit.record(self.request, "token-create", token, {"scope": [None, token.scope]},
                         team_id=token.team_id or Team.objects.personal_for(token.user).pk)

    def perform_destroy(self, token: ApiToken) -> None:
        with transaction.atomic():
            audit.record(self.request, "token-revoke", token,
                         team_id=token.team_id or Team.objects.personal_for(token.user).pk)
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
            administered = Team.objects.of(user, Role.ADMIN)
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
