from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from monitors.regions import Region, RegionQuerySet, live_cutoff, queue_for

from . import broker_acl, reports
from .choices import SERVING_STATES, NodeState

log = logging.getLogger(__name__)

__all__ = ["NodeToken", "Region", "RegionQuerySet", "Rejection", "WorkerNode", "live_cutoff", "queue_for"]


class NodeTokenQuerySet(models.QuerySet):
    def valid(self) -> NodeTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class NodeToken(models.Model):
    """A probe node's enrolment: it may report results for one region.

    Only a hash is stored; the token itself is shown once, when issued.
    """

    PREFIX = "lnt_"

    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="tokens")
    label = models.CharField(max_length=200, blank=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=16, editable=False, help_text="The token's first characters, to tell them apart.")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = NodeTokenQuerySet.as_manager()

    class Meta:
        ordering = ["region__name", "-created_at"]

    def __str__(self) -> str:
        return f"{self.region} {self.hint}… {'(revoked)' if self.revoked_at else ''}".strip()

    @staticmethod
    def hash(token: str) -> str:
        # Tokens are 256 random bits: a fast hash is as good as a slow one
        # here. The hash is also the key the node signs its reports with
        # (workers/reports.py), so it never leaves the database.
        return reports.key_hash(token)

    @classmethod
    def issue(cls, region_name: str, label: str = "") -> tuple[NodeToken, str]:
        region, _ = Region.objects.get_or_create(name=region_name)
        token = cls.PREFIX + secrets.token_urlsafe(32)
        issued = cls.objects.create(region=region, label=label, key_hash=cls.hash(token), hint=token[:10])
        transaction.on_commit(lambda: cls.sync_broker_users_if_managed([region.name]))
        return issued, token

    @classmethod
    def verify_report(cls, report: object, kind: str) -> tuple[NodeToken, object]:
        """The valid token that signed a node's report, and its payload; or
        `reports.Refused` saying why not."""
        return reports.verify(
            report, kind, lambda region: cls.objects.select_related("region").filter(region__name=region),
            seen=reports.remember_nonce,
        )

    @classmethod
    def broker_users(cls, regions: list[str] | None = None) -> dict[str, list[str]]:
        """The password hashes of each region's broker user: its valid tokens'
        (workers/broker_acl.py). Every region with a token, revoked or not, so
        that a region whose last token was revoked gets a user switched off."""
        tokens = cls.objects.all() if regions is None else cls.objects.filter(region__name__in=regions)
        users: dict[str, list[str]] = {name: [] for name in tokens.values_list("region__name", flat=True)}
        for name, key_hash in tokens.valid().values_list("region__name", "key_hash"):
            users[name].append(key_hash)
        return users

    @classmethod
    def sync_broker_users(cls, regions: list[str] | None = None, client=None) -> list[str]:
        return broker_acl.sync(cls.broker_users(regions), client)

    @classmethod
    def sync_broker_users_if_managed(cls, regions: list[str]) -> None:
        """After a token is issued or revoked, when Loopr manages the
        broker's users (LOOPR_BROKER_ACL); a broker that refuses is logged,
        not fatal."""
        if not settings.LOOPR_BROKER_ACL:
            return
        try:
            cls.sync_broker_users(regions)
        except Exception as exc:
            log.error("could not update the broker users of %s: %s", regions, exc)

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])
        WorkerNode.objects.filter(token=self).update(state=NodeState.REVOKED)
        # The token is also the node's broker password: it stops working there too.
        transaction.on_commit(lambda: NodeToken.sync_broker_users_if_managed([self.region.name]))


class WorkerNode(models.Model):
    """A probe process, known from its heartbeats (it never touches the database itself)."""

    name = models.CharField(max_length=200, unique=True)
    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="nodes")
    token = models.ForeignKey(NodeToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="nodes")
    state = models.CharField(max_length=16, choices=NodeState.choices, default=NodeState.ONLINE)
    version = models.CharField(max_length=50, blank=True)
    concurrency = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField()
    # Running counters, as the node last reported them (since it started).
    checks_done = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)
    mean_lag_ms = models.FloatField(null=True, blank=True, help_text="Mean of check start minus its slot.")
    last_error = models.TextField(blank=True)
    canary_error = models.TextField(blank=True)
    rejected_results = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["region__name", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_online(self) -> bool:
        return self.state in SERVING_STATES and self.last_heartbeat_at >= live_cutoff()

    @classmethod
    def id_for(cls, name: str, token: NodeToken) -> int:
        """The node's id, stored with its results. Results can arrive before
        the node's first heartbeat (another queue): they register it, offline
        until that heartbeat."""
        pk = cls.objects.filter(name=name).values_list("pk", flat=True).first()
        if pk is None:
            pk = cls.objects.get_or_create(name=name, defaults={
                "region_id": token.region_id, "token": token, "state": NodeState.OFFLINE,
                "last_heartbeat_at": timezone.now()})[0].pk
        return pk


class Rejection(models.Model):
    """Reports refused from a node (unknown or revoked token, bad signature,
    stale) and rows refused from a valid one (`malformed result: <field>`),
    counted, so an operator sees a rogue or misconfigured node instead of
    silence. Bounded: a node name is kept only when a node of that name has
    registered in that region, a region only when it exists, and reasons come
    from a fixed vocabulary, so a rogue inventing names adds no rows."""

    UNVERIFIED_NODE = "(unverified)"
    UNKNOWN_REGION = "(unknown)"

    node = models.CharField(max_length=200)
    region = models.CharField(max_length=64)
    reason = models.CharField(max_length=200)
    count = models.PositiveBigIntegerField(default=0)
    first_at = models.DateTimeField(auto_now_add=True)
    last_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["node", "region", "reason"], name="rejection_key")]
        ordering = ["-last_at"]

    def __str__(self) -> str:
        return f"{self.node}/{self.region}: {self.reason} ×{self.count}"

    @classmethod
    def record(cls, node: str, region: str, reason: str, count: int) -> None:
        node, region, reason = str(node)[:200], str(region)[:64], reason[:200]
        known = WorkerNode.objects.filter(name=node, region__name=region).update(
            rejected_results=F("rejected_results") + count)
        if not known:
            node = cls.UNVERIFIED_NODE
            region = region if Region.objects.filter(name=region).exists() else cls.UNKNOWN_REGION
        row, _ = cls.objects.get_or_create(node=node, region=region, reason=reason)
        cls.objects.filter(pk=row.pk).update(count=F("count") + count, last_at=timezone.now())
