"""Teams: who shares which monitors, channels and windows, with what rights.

Nothing here imports the apps whose objects teams own: they point at a team
(`TeamOwned`), and a team knows only its members."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from .choices import Role, TokenScope


class TeamQuerySet(models.QuerySet):
    def of(self, user, role: str = Role.VIEWER) -> TeamQuerySet:
        """The teams where `user` holds at least `role` (a superuser: every team)."""
        if user.is_superuser:
            return self
        return self.filter(memberships__user=user, memberships__role__in=Role.at_least(role))

    def administered_by(self, user) -> TeamQuerySet:
        """The teams whose members, invitations and tokens `user` manages (admin or owner)."""
        return self.of(user, Role.ADMIN)

    def with_role_of(self, user) -> TeamQuerySet:
        """Each team with `caller_role`: the user's role there (None if not a member)."""
        roles = Membership.objects.filter(team=models.OuterRef("pk"), user_id=user.pk).values("role")[:1]
        return self.annotate(caller_role=models.Subquery(roles))

    def personal_for(self, user) -> Team:
        """The user's personal team, made (with them as its owner) if it is missing."""
        team = self.filter(personal_of=user).first()
        if team is not None:
            return team
        with transaction.atomic():
            team, created = self.get_or_create(personal_of=user, defaults={"name": user.get_username()})
            if created:
                Membership.objects.create(team=team, user=user, role=Role.OWNER)
        return team


class Team(models.Model):
    name = models.CharField(max_length=200)
    # The team every user has from the start, where their objects go unless
    # they name another; it goes with its user.
    personal_of = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                                       related_name="personal_team", editable=False)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_personal(self) -> bool:
        return self.personal_of_id is not None

    @property
    def audit_team_id(self) -> int:
        return self.pk

    def role_of(self, user) -> str | None:
        """The user's role here; a superuser acts as an owner of every team."""
        if user.is_superuser:
            return Role.OWNER
        if not user.is_authenticated:
            return None
        return self.memberships.filter(user=user).values_list("role", flat=True).first()

    def owner_count(self) -> int:
        return self.memberships.filter(role=Role.OWNER).count()

    # Who may do what to a team, for the API and the admin alike: each
    # check raises PermissionDenied (the API's 403, the admin's refusal) or,
    # for what no role may do, a ValidationError naming the field (a 400,
    # a form's error).

    def require(self, user, role: str, doing: str) -> None:
        held = self.role_of(user)
        if Role.rank(held) < Role.rank(role):
            raise PermissionDenied(f"Only a team's {role}s or above may {doing}; your role is {held}.")

    def check_rename(self, user) -> None:
        self.require(user, Role.OWNER, "rename the team")

    def check_delete(self, user) -> None:
        self.require(user, Role.OWNER, "delete the team")
        if self.is_personal:
            raise ValidationError({"team": "A personal team goes only with its user."})

    def check_grant(self, user, role: str, verb: str) -> None:
        """Whether `user` may `verb` ("add", "invite", …) someone as `role`: admins any role but owner."""
        self.require(user, Role.ADMIN, f"{verb} members")
        if role == Role.OWNER:
            self.require(user, Role.OWNER, f"{verb} owners")

    def check_member_changes(self, user, changed=(), added=()) -> None:
        """Whether `user` may make these changes at once: give each
        (membership, role) of `changed` its role (None: remove the member;
        anyone may leave) and add members with the roles in `added`. The
        team must keep an owner."""
        for membership, role in changed:
            leaving = role is None and membership.user_id == user.pk
            if not leaving:
                self.require(user, Role.ADMIN, "change members")
            if membership.role == Role.OWNER and not leaving:
                self.require(user, Role.OWNER, "change or remove owners")
            if role == Role.OWNER:
                self.require(user, Role.OWNER, "make owners")
        for role in added:
            self.check_grant(user, role, "add")
        losing = {membership.pk: role for membership, role in changed
                  if membership.role == Role.OWNER and role != Role.OWNER}
        gaining = Role.OWNER in added or any(role == Role.OWNER for _, role in changed)
        if losing and not gaining:
            # Two owners demoting each other at once would both see the
            # other one stay: the team's row is their queue (in the caller's
            # transaction), and the owners are read after it.
            Team.objects.select_for_update().filter(pk=self.pk).exists()
        if losing and not gaining and not self.memberships.filter(role=Role.OWNER).exclude(pk__in=losing).exists():
            how = "leave" if None in losing.values() else "be demoted"
            raise ValidationError({"role": f"The team's last owner cannot {how}; make another owner first."})

    def user_to_add(self, field: str, value: str):
        """The active user whose `field` ("username" or "email") is `value`,
        who is not a member yet; a ValidationError naming `field` otherwise."""
        users = get_user_model().objects.filter(is_active=True)
        user = (users.filter(username=value) if field == "username" else users.filter(email__iexact=value)).first()
        if user is None:
            raise ValidationError({field: f"No user with this {field}; invite them instead."})
        if self.memberships.filter(user=user).exists():
            raise ValidationError({field: "Already a member of this team."})
        return user


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team", "user__username"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_once_per_team")]
        indexes = [
            # Every scoped query: the teams of one user (the unique key serves a team's members).
            models.Index(fields=["user", "team"], name="membership_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    @property
    def audit_team_id(self) -> int:
        return self.team_id


class TeamOwned(models.Model):
    """A model whose rows belong to a team: what the team's members see and,
    with a role that allows it, change. `owner` is whoever created it (kept
    when they leave: the team's objects are not theirs alone)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+",
                             help_text="The team it belongs to; its members see it.")

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        self.fill_team()
        super().save(*args, **kwargs)

    def fill_team(self) -> None:
        # Created without a team (code from before teams, a script): its
        # creator's personal team, as the API does.
        if self.team_id is None and getattr(self, "owner_id", None) is not None:
            self.team = Team.objects.personal_for(self.owner)


KEY_PREFIX = "lpr_"
# Characters of a key shown in lists, to tell keys apart ("lpr_" and 8 more).
SHOWN_PREFIX = 12


def hash_key(key: str) -> str:
    # One SHA-256, no salt or stretching: a key is 256 random bits, not a
    # password a dictionary could guess, and every API request checks one.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def issue(self, user, name: str, team: Team | None = None, scope: str = TokenScope.WRITE,
              expires_at=None) -> tuple[ApiToken, str]:
        """A new token and its key: the key is shown once, only its hash is kept."""
        token = self.model(user=user, name=name, team=team, scope=scope, expires_at=expires_at)
        key = token.new_key()
        token.save(force_insert=True)
        return token, key

    def manageable_by(self, user) -> ApiTokenQuerySet:
        """The tokens a user sees and may revoke: their own and those of the
        teams they administer (a superuser: all)."""
        if user.is_superuser:
            return self
        return self.filter(models.Q(user=user) | models.Q(team__in=Team.objects.administered_by(user)))

    def cli_key(self, user, reset: bool = False) -> str:
        """The key of `user`'s personal write token for scripts
        (`manage.py create_token`): the same key on every call until reset.
        It is derived from SECRET_KEY and the token's row, so the database
        alone still holds no usable key; after SECRET_KEY changes a new one is made."""
        if reset:
            self.filter(user=user, name=CLI_TOKEN_NAME, team=None).delete()
        for token in self.filter(user=user, name=CLI_TOKEN_NAME, team=None):
            if token.key_hash == hash_key(token.derived_key()):
                return token.derived_key()
            token.delete()  # derived from an earlier SECRET_KEY
        with transaction.atomic():
            token = self.create(user=user, name=CLI_TOKEN_NAME, scope=TokenScope.WRITE, key_hash=secrets.token_hex(32))
            key = token.derived_key()
            token.prefix, token.key_hash = key[:SHOWN_PREFIX], hash_key(key)
            token.save(update_fields=["prefix", "key_hash"])
        return key

    def usable(self, key: str, now=None) -> ApiToken | None:
        """The token whose key this is, unless it expired (a revoked one is gone)."""
        now = now or timezone.now()
        token = self.select_related("user").filter(key_hash=hash_key(key)).first()
        if token is None or (token.expires_at is not None and token.expires_at <= now):
            return None
        return token


CLI_TOKEN_NAME = "create_token"


class ApiToken(models.Model):
    """A key for the API: acts as its user, limited to one team (a team
    token) or not (a personal token: all the user's teams), reading only or
    also writing. Revoking deletes it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens",
                             help_text="Only this team's objects; empty: all of its user's teams.")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.WRITE)
    prefix = models.CharField(max_length=SHOWN_PREFIX, help_text="The key's first characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def new_key(self) -> str:
        """Gives the (unsaved) token a fresh key's prefix and hash; the key itself is only returned."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self.prefix, self.key_hash = key[:SHOWN_PREFIX], hash_key(key)
        return key

    @staticmethod
    def check_expiry(expires_at) -> None:
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError({"expires_at": "Must be in the future."})

    @property
    def audit_team_id(self) -> int:
        # A personal token's changes are logged in its user's personal team.
        return self.team_id or Team.objects.personal_for(self.user).pk

    def derived_key(self) -> str:
        digest = hmac.new(settings.SECRET_KEY.encode(), f"loopr-cli-token:{self.user_id}:{self.pk}".encode(),
                          hashlib.sha256).digest()
        return KEY_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def record_use(self, now=None) -> None:
        # At most once a minute: a script polling every second would otherwise write on every request.
        now = now or timezone.now()
        if self.last_used_at is None or now - self.last_used_at >= timedelta(minutes=1):
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class AuditEntry(models.Model):
    """Who changed what in a team, and when: written in the transaction of
    the change itself, so that a change without its entry cannot commit."""

    team = models.ForeignKey(Team, null=True, on_delete=models.SET_NULL, related_name="audit_entries")
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    # The username (kept when the user is deleted), and the token's name when a token did it.
    actor_name = models.CharField(max_length=150, blank=True)
    token_name = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=32)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True)
    # For updates: {field: [old, new]}, secrets redacted.
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            # A team's log, newest first (the API's list and its `since` filter).
            models.Index(fields=["team", "-at"], name="auditentry_team_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_name or 'someone'} {self.action} {self.object_type} {self.object_repr}"


INVITATION_KEY_PREFIX = "inv_"


class InvitationQuerySet(models.QuerySet):
    def issue(self, team: Team, email: str, role: str, invited_by) -> tuple[Invitation, str]:
        """A new invitation and its key: the key goes into the email, only its hash is kept."""
        invitation = self.model(team=team, email=email, role=role, invited_by=invited_by)
        key = invitation.new_key()
        invitation.save(force_insert=True)
        return invitation, key

    def check_free(self, team: Team, email: str) -> None:
        """A ValidationError naming `email` if it is a member's, or already invited."""
        if team.memberships.filter(user__email__iexact=email).exists():
            raise ValidationError({"email": "Already a member of this team."})
        if self.filter(team=team).pending().filter(email__iexact=email).exists():
            raise ValidationError({"email": "Already invited: revoke that invitation to send a new one."})

    def pending(self, now=None) -> InvitationQuerySet:
        return self.filter(accepted_at=None, expires_at__gt=now or timezone.now())

    def by_key(self, key: str) -> Invitation | None:
        return self.select_related("team").filter(key_hash=hash_key(key)).first()


class Invitation(models.Model):
    """A link, sent by email, that makes whoever opens it (signed in) a
    member of the team with `role`: once, and until it expires."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(help_text="Where the link was sent.")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.VIEWER)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.email} to {self.team} ({self.role})"

    def new_key(self) -> str:
        """Gives the (unsaved) invitation a fresh key's hash and its expiry; the key, for the email, is returned."""
        key = INVITATION_KEY_PREFIX + secrets.token_urlsafe(32)
        self.key_hash = hash_key(key)
        self.expires_at = timezone.now() + timedelta(seconds=settings.LOOPR_INVITATION_MAX_AGE)
        return key

    @property
    def audit_team_id(self) -> int:
        return self.team_id

    def is_expired(self, now=None) -> bool:
        return self.expires_at <= (now or timezone.now())

    def accept(self, user, now=None) -> Membership | None:
        """Makes `user` a member with the invitation's role, once: None if it
        was used meanwhile (the conditional update lets only one request win)."""
        now = now or timezone.now()
        with transaction.atomic():
            claimed = Invitation.objects.filter(pk=self.pk, accepted_at=None, expires_at__gt=now).update(
                accepted_at=now, accepted_by=user)
            if not claimed:
                return None
            self.accepted_at, self.accepted_by = now, user
            membership, _ = Membership.objects.get_or_create(team=self.team, user=user, defaults={"role": self.role})
        return membership
