"""Teams, members, invitations, tokens and the audit log in the admin, with
the API's rules: the models decide (Team.check_*, the querysets'
`administered_by` and `manageable_by`), this module only asks them.

As through the API, any staff user makes teams (and owns the ones they
make), sees their teams, and makes personal tokens; a team's admins manage
its members (not owners: owners do), its invitations and its tokens, and
read its log; only owners rename or delete it; viewers and editors see it
read-only. Django's model permissions are not asked for these: the role in
the team is the permission, exactly as in the API. Every change writes the
API's audit entry, in the admin view's transaction."""

from __future__ import annotations

from math import ceil

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect

from loopr.admin import AuditedAdmin, CountedDeleteAdmin, ReadOnlyAdmin
from monitors.models import CheckResult, StatusChange
from notifications.models import Notification

from . import audit, invitations, throttling
from .choices import Role
from .models import ApiToken, AuditEntry, Invitation, Membership, Team


def is_staff(request) -> bool:
    return request.user.is_active and request.user.is_staff


class ByRoleAdmin:
    """Open to every staff user, whatever Django permissions they hold:
    what they see and may do there is decided by their roles in their teams."""

    def has_module_permission(self, request) -> bool:
        return is_staff(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return is_staff(request)


def manages(request, team: Team | None) -> bool:
    """Whether the user manages the team's members, invitations and tokens (admin or owner)."""
    return team is not None and team.pk is not None and Role.rank(team.role_of(request.user)) >= Role.rank(Role.ADMIN)


def allows(check, *args) -> bool:
    """Whether one of the team's checks (Team.check_*) lets this through."""
    try:
        check(*args)
    except (PermissionDenied, ValidationError):
        return False
    return True


def refused(exc: Exception) -> list[str]:
    """A refusal's messages, for a form: PermissionDenied's text, or a ValidationError's."""
    return [str(exc)] if isinstance(exc, PermissionDenied) else exc.messages


class MembershipForm(forms.ModelForm):
    """A member's role; a new member is named by username or email, as in
    the API (a list of every account would show other people's names)."""

    who = forms.CharField(required=False, max_length=254, label="username or email",
                          help_text="Who to add: their username, or their account's email.")

    class Meta:
        model = Membership
        fields = ["who", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["who"].disabled = True  # a membership's user never changes

    def clean(self) -> dict:
        data = super().clean()
        if self.instance.pk is not None or not self.has_changed():
            return data
        who = (data.get("who") or "").strip()
        if not who:
            self.add_error("who", "Give the username or the email of who to add.")
            return data
        exists = get_user_model().objects.filter(username=who).exists()
        field = "username" if exists or "@" not in who else "email"
        try:
            self.instance.user = self.instance.team.user_to_add(field, who)
        except ValidationError as exc:
            self.add_error("who", exc.message_dict[field])
        return data


class MembershipFormSet(forms.BaseInlineFormSet):
    """The rows' changes, checked together by the team's one rule
    (Team.check_member_changes): who may add, change or remove whom, and
    that an owner is left."""

    actor = None  # set per request by MembershipInline.get_formset

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        edited = [form for form in self.forms if form.instance.pk is not None]
        # As stored: the forms have already put the new roles on their instances.
        stored = self.instance.memberships.in_bulk([form.instance.pk for form in edited])
        changed, added = [], []
        for form in self.forms:
            if form.instance.pk is None:
                if form.has_changed() and not self._should_delete_form(form):
                    added.append(form.cleaned_data["role"])
            elif self._should_delete_form(form):
                changed.append((stored[form.instance.pk], None))
            elif "role" in form.changed_data:
                changed.append((stored[form.instance.pk], form.cleaned_data["role"]))
        try:
            self.instance.check_member_changes(self.actor, changed, added)
        except (PermissionDenied, ValidationError) as exc:
            raise ValidationError(refused(exc)) from exc


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    formset = MembershipFormSet
    fields = ["user", "who", "role", "created_at"]
    readonly_fields = ["user", "created_at"]
    extra = 1

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.actor = request.user
        return formset

    def has_view_permission(self, request, obj=None) -> bool:
        return is_staff(request)

    def has_add_permission(self, request, obj=None) -> bool:
        return manages(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return manages(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return manages(request, obj)


@admin.register(Team)
class TeamAdmin(ByRoleAdmin, CountedDeleteAdmin, AuditedAdmin, admin.ModelAdmin):
    list_display = ["name", "your_role", "is_personal", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["personal_of", "created_at"]
    inlines = [MembershipInline]
    # A team takes its monitors along: their results are counted, not listed.
    delete_counts = (CheckResult, StatusChange, Notification)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(
            pk__in=Team.objects.of(request.user).values("pk")).with_role_of(request.user)

    def get_inlines(self, request, obj=None):
        # Members are added once the team exists (its creator is its first owner).
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        shown = list(super().get_readonly_fields(request, obj))
        if obj is not None and not allows(obj.check_rename, request.user):
            shown.append("name")
        return shown

    def get_actions(self, request):
        # Teams are deleted one at a time, from their page, where the rules are checked.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_add_permission(self, request) -> bool:
        return is_staff(request)

    def has_change_permission(self, request, obj=None) -> bool:
        # Admins change the members, owners also the name; the rest see it read-only.
        return is_staff(request) and (obj is None or manages(request, obj))

    def has_delete_permission(self, request, obj=None) -> bool:
        return is_staff(request) and obj is not None and allows(obj.check_delete, request.user)

    @admin.display(description="your role")
    def your_role(self, team: Team) -> str:
        return team.caller_role or "—"  # a superuser sees teams they are not a member of

    def save_model(self, request, obj: Team, form, change: bool) -> None:
        if change and "name" in form.changed_data:
            obj.check_rename(request.user)
        super().save_model(request, obj, form, change)
        if not change:
            Membership.objects.create(team=obj, user=request.user, role=Role.OWNER)

    def delete_model(self, request, obj: Team) -> None:
        obj.check_delete(request.user)
        super().delete_model(request, obj)

    def save_formset(self, request, form, formset, change: bool) -> None:
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        roles = dict(form.instance.memberships.values_list("pk", "role"))
        formset.save(commit=False)
        for membership in formset.deleted_objects:
            membership.role = roles[membership.pk]
            audit.member_removed(request, membership)
            membership.delete()
        for membership, fields in formset.changed_objects:
            if "role" in fields:
                membership.save()
                audit.member_changed(request, membership, roles[membership.pk])
        for membership in formset.new_objects:
            membership.save()
            audit.member_added(request, membership)
        return None


class RatedForm(forms.ModelForm):
    """A form whose every valid submission counts against one of the API's
    rates (`rate`), shared with the API: too many is the form's error."""

    request = None  # set per request by ManagedAdmin.get_form
    rate: str = ""
    too_many = "Too many: try again in {} seconds."

    def clean(self) -> dict:
        data = super().clean()
        self.check_rules(data)
        if not self.errors:  # counted only once the rest holds
            wait = throttling.wait_for(self.request, self.rate)
            if wait is not None:
                raise ValidationError(self.too_many.format(ceil(wait)))
        return data

    def check_rules(self, data: dict) -> None:
        """The model's rules for the new object, as the form's errors."""


class ManagedAdmin(ByRoleAdmin):
    """Invitations and tokens: made in a RatedForm whose team is one the
    user administers, never edited, and revoked by deleting (`revoked`
    writes the audit entry, in the deletion's transaction)."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.request = request
        return form

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "team":
            kwargs["queryset"] = Team.objects.administered_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def revoked(self, request, obj) -> None:
        raise NotImplementedError

    def delete_model(self, request, obj) -> None:
        with transaction.atomic(savepoint=False):
            self.revoked(request, obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for obj in queryset:
                self.revoked(request, obj)
            super().delete_queryset(request, queryset)


class InvitationForm(RatedForm):
    rate = throttling.INVITATIONS
    too_many = "You sent too many invitations: try again in {} seconds."

    class Meta:
        model = Invitation
        fields = ["team", "email", "role"]

    def check_rules(self, data: dict) -> None:
        team, email, role = data.get("team"), data.get("email"), data.get("role")
        if team is not None and email:
            try:
                Invitation.objects.check_free(team, email)
            except ValidationError as exc:
                self.add_error("email", exc.message_dict["email"])
        if team is not None and role:
            try:
                team.check_grant(self.request.user, role, "invite")
            except PermissionDenied as exc:
                self.add_error("role", str(exc))


@admin.register(Invitation)
class InvitationAdmin(ManagedAdmin, admin.ModelAdmin):
    """The pending invitations of the teams the user administers: sent here
    (the same email and rate as the API's) and revoked (deleted)."""

    form = InvitationForm
    list_display = ["email", "team", "role", "invited_by", "created_at", "expires_at"]
    list_filter = ["role"]
    search_fields = ["email"]
    list_select_related = ["team", "invited_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).pending().filter(team__in=Team.objects.administered_by(request.user))

    def get_fields(self, request, obj=None):
        return ["team", "email", "role"] if obj is None else ["team", "email", "role", "invited_by", "created_at",
                                                              "expires_at"]

    def has_add_permission(self, request) -> bool:
        return is_staff(request) and Team.objects.administered_by(request.user).exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        if not is_staff(request):
            return False
        if obj is None:
            return Team.objects.administered_by(request.user).exists()
        return allows(obj.team.check_grant, request.user, obj.role, "revoke invitations of")

    def save_model(self, request, obj: Invitation, form, change: bool) -> None:
        try:
            invitations.invite(request, obj)
        except invitations.EmailNotSent:
            self.message_user(request, "The invitation's email could not be sent; nothing was saved. "
                                       "Try again later.", messages.ERROR)
            return
        self.message_user(request, f"Invitation sent to {obj.email}.", messages.SUCCESS)

    def log_addition(self, request, obj, message):
        return super().log_addition(request, obj, message) if obj.pk else None

    def response_add(self, request, obj, post_url_continue=None):
        if obj.pk is None:  # not sent: the form again
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def revoked(self, request, obj: Invitation) -> None:
        audit.invitation_revoked(request, obj)


class ApiTokenForm(RatedForm):
    rate = throttling.TOKENS
    too_many = "You made too many tokens: try again in {} seconds."

    class Meta:
        model = ApiToken
        fields = ["name", "team", "scope", "expires_at"]

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        try:
            ApiToken.check_expiry(expires_at)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["expires_at"]) from exc
        return expires_at


@admin.register(ApiToken)
class ApiTokenAdmin(ManagedAdmin, admin.ModelAdmin):
    """The user's tokens and those of the teams they administer, as in the
    API: made here (the key is shown once, in a message), listed, revoked
    (deleted). `manage.py create_token` makes a personal one for scripts."""

    form = ApiTokenForm
    list_display = ["name", "prefix", "user", "team", "scope", "created_at", "expires_at", "last_used_at"]
    list_filter = ["scope"]
    search_fields = ["name", "prefix"]
    list_select_related = ["user", "team"]

    def get_queryset(self, request):
        return super().get_queryset(request).manageable_by(request.user)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "team", "scope", "expires_at"]
        return ["name", "prefix", "user", "team", "scope", "created_at", "expires_at", "last_used_at"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "team":
            field.help_text = ("Only this team's objects (a team you are an admin or owner of); empty: a personal "
                               "token, acting as you in all your teams.")
        return field

    def has_add_permission(self, request) -> bool:
        return is_staff(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return is_staff(request)  # of the tokens get_queryset lets them see

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        obj.user = request.user
        key = obj.new_key()
        super().save_model(request, obj, form, change)
        audit.token_created(request, obj)
        # The only time anyone sees it: only its hash is stored.
        self.message_user(request, f"The key of {obj.name}, shown only now (store it): {key}", messages.WARNING)

    def revoked(self, request, obj: ApiToken) -> None:
        audit.token_revoked(request, obj)


@admin.register(AuditEntry)
class AuditEntryAdmin(ByRoleAdmin, ReadOnlyAdmin, admin.ModelAdmin):
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
            return entries  # those of deleted teams too
        return entries.filter(team__in=Team.objects.administered_by(request.user))

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
