from __future__ import annotations

from django.db import models


class NodeState(models.TextChoices):
    ONLINE = "online", "Online"
    IMPAIRED = "impaired", "Impaired (its canary fails)"
    DRAINING = "draining", "Draining"
    OFFLINE = "offline", "Offline"
    REVOKED = "revoked", "Revoked"


# Nodes in these states take work, so they make their region live.
SERVING_STATES = (NodeState.ONLINE, NodeState.IMPAIRED)
