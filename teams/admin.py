"""Teams, members, tokens and the audit log in the admin. A staff user who
is not a superuser sees their own teams (read-only: members are managed
through the API, where the role rules live), their own tokens, and the log
of the teams they administer."""

from __future__ import annotations

from django.contrib import admin

from loopr.admin import ReadOnlyAdmin, ReadOnlyInline

from .choices import Role
from .models import ApiToken, AuditEntry, Membership, Team


class MembershipInline(ReadOnlyInline):
    model = Membership
    fields = ["user", "role", "created_at"]
    readonly_fields = fields


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "is_personal", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["personal_of", "created_at"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=Team.objects.of(request.user).values("pk"))

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    """Made through the API or `manage.py create_token` (the key is shown
    there, once); here they are listed and revoked (deleted)."""

    list_display = ["name", "prefix", "user", "team", "scope", "created_at", "expires_at", "last_used_at"]
    list_filter = ["scope"]
    search_fields = ["name", "prefix"]
    fields = ["name", "prefix", "user", "team", "scope", "created_at", "expires_at", "last_used_at"]
    readonly_fields = fields
    list_select_related = ["user", "team"]

    def get_queryset(self, request):
        tokens = super().get_queryset(request)
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ["at", "team", "actor_name", "token_name", "action", "object_type", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_name", "object_repr", "object_id"]
    fields = ["at", "team", "actor", "actor_name", "token_name", "action", "object_type", "object_id", "object_repr",
              "changes"]
    readonly_fields = fields
    list_select_related = ["team"]

    def get_queryset(self, request):
        entries = super().get_queryset(request)
        if request.user.is_superuser:
            return entries
        return entries.filter(team__in=Team.objects.of(request.user, Role.ADMIN))

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
