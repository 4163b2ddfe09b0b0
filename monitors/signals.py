"""A maintenance window takes effect as soon as it is saved, not at the next
periodic sync: a monitor must not alert in the seconds between."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from .models import MaintenanceWindow


def _sync_after_commit(**kwargs) -> None:
    from .maintenance import sync_maintenance

    transaction.on_commit(sync_maintenance)


receiver(post_save, sender=MaintenanceWindow)(_sync_after_commit)
receiver(post_delete, sender=MaintenanceWindow)(_sync_after_commit)
receiver(m2m_changed, sender=MaintenanceWindow.monitors.through)(_sync_after_commit)
