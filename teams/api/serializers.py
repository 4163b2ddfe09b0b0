from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, serializers

from loopr.api import StrictJSONTypes, token_team

from ..choices import Role, TokenScope
from ..models import ApiToken, AuditEntry, Invitation, Membership, Team


class TeamSerializer(StrictJSONTypes, serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role in the team.")

    class Meta:
        model = Team
        fields = ["id", "name", "is_personal", "role", "created_at"]
        read_only_fields = ["is_personal", "created_at"]

    def get_role(self, team: Team) -> str | None:
        role = getattr(team, "caller_role", None)
        if role is None and self.context["request"].user.is_superuser:
            return Role.OWNER
        return role


class MemberSerializer(StrictJSONTypes, serializers.ModelSerializer):
    username = serializers.CharField(required=False, max_length=150,
                                     help_text="Who to add (or `email`); read: the member's username.")
    email = serializers.EmailField(required=False, write_only=True, help_text="Who to add, by their account's email.")
    role = serializers.ChoiceField(Role.choices, help_text="viewer, editor, admin or owner.")

    class Meta:
        model = Membership
        fields = ["id", "user", "username", "email", "role", "created_at"]
        read_only_fields = ["user", "created_at"]

    def to_representation(self, membership: Membership) -> dict:
        data = super().to_representation(membership)
        data["username"] = membership.user.get_username()
        return data

    def validate(self, attrs: dict) -> dict:
        if self.instance is not None:
            attrs.pop("username", None), attrs.pop("email", None)  # a membership's user never changes
            return attrs
        if attrs.get("username"):
            field = "username"
        elif attrs.get("email"):
            field = "email"
        else:
            raise serializers.ValidationError({"username": ["Give the `username` or the `email` of who to add."]})
        try:
            user = self.context["team"].user_to_add(field, attrs[field])
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        attrs.pop("username", None), attrs.pop("email", None)
        return {**attrs, "user": user}


class InvitationSerializer(StrictJSONTypes, serializers.ModelSerializer):
    email = serializers.EmailField(max_length=254, help_text="Where to send the link.")
    role = serializers.ChoiceField(Role.choices, help_text="viewer, editor, admin or owner (owners invite owners).")

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "created_at", "expires_at"]
        read_only_fields = ["invited_by", "created_at", "expires_at"]

    def validate_email(self, email: str) -> str:
        try:
            Invitation.objects.check_free(self.context["team"], email)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["email"]) from exc
        return email


class TokenSerializer(StrictJSONTypes, serializers.ModelSerializer):
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.all(), required=False, allow_null=True,
        pk_field=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        help_text="Only this team's objects (you must be its admin or owner); omitted or null: a personal token, "
                  "acting as you in all your teams.")
    scope = serializers.ChoiceField(TokenScope.choices, default=TokenScope.WRITE,
                                    help_text="read: every write is refused (403); write: as your role allows.")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "team", "scope", "prefix", "created_at", "expires_at", "last_used_at"]
        read_only_fields = ["prefix", "created_at", "last_used_at"]

    def validate_team(self, team: Team | None) -> Team | None:
        request = self.context["request"]
        limited_to = token_team(request)
        if team is None:
            if limited_to is not None:
                raise exceptions.PermissionDenied({"team": ["A team token can make tokens of its own team only."]})
            return None
        if limited_to is not None and team.pk != limited_to or not Team.objects.of(request.user).filter(
                pk=team.pk).exists():
            raise serializers.ValidationError(f'Invalid pk "{team.pk}" - object does not exist.')
        if not Team.objects.administered_by(request.user).filter(pk=team.pk).exists():
            raise exceptions.PermissionDenied({"team": ["Only the team's admins and owners make its tokens."]})
        return team

    def validate_expires_at(self, value):
        try:
            ApiToken.check_expiry(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["expires_at"]) from exc
        return value

    def create(self, validated_data: dict) -> ApiToken:
        token, self.new_key = ApiToken.objects.issue(self.context["request"].user, **validated_data)
        return token


class NewTokenSerializer(TokenSerializer):
    key = serializers.SerializerMethodField(help_text="The key: shown only in this answer, store it now.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]

    def get_key(self, token: ApiToken) -> str:
        return getattr(self, "new_key", "")


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "team", "at", "actor", "actor_name", "token_name", "action", "object_type", "object_id",
                  "object_repr", "changes"]
        read_only_fields = fields
