"""Teams: who shares which monitors, channels and windows, with what rights.

Nothing here imports the apps whose objects teams own: they point at a team
(`TeamOwned`), and a team knows only its members."""

from __future__ import annotations

from django.conf import settings
from django.db import models, transaction

from .choices import Role


class TeamQuerySet(models.QuerySet):
    def of(self, user, role: str = Role.VIEWER) -> TeamQuerySet:
        """The teams where `user` holds at least `role` (a superuser: every team)."""
        if user.is_superuser:
            return self
        return self.filter(memberships__user=user, memberships__role__in=Role.at_least(role))

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

    def role_of(self, user) -> str | None:
        """The user's role here; a superuser acts as an owner of every team."""
        if user.is_superuser:
            return Role.OWNER
        if not user.is_authenticated:
            return None
        return self.memberships.filter(user=user).values_list("role", flat=True).first()

    def owner_count(self) -> int:
        return self.memberships.filter(role=Role.OWNER).count()


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

    def is_last_owner(self) -> bool:
        return self.role == Role.OWNER and self.team.owner_count() <= 1


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
