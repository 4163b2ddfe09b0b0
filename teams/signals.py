from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import Team


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="teams.personal_team")
def give_personal_team(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    # Every user has a personal team from the start: where their objects go
    # unless they name another team (loaddata's raw saves bring their own).
    if created and not raw:
        Team.objects.personal_for(instance)
