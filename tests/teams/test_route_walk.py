"""Every route of the API schema, walked as every kind of caller: what each
may do, and that no list or filter ever shows another team's objects.

The routes come from the OpenAPI schema itself, so a route added later
without a line in ROUTES fails here until someone says who may use it. All
requests run against one set of objects, each inside a transaction rolled
back afterwards (a delete does not take the object away from the next role).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from monitors.models import CheckResult, Ping
from notifications.models import EscalationPolicy
from statuspages.models import Component, StatusPage, StatusReport
from teams.choices import Role, TokenScope
from teams.models import ApiToken, AuditEntry, Invitation
from tests.factories import (
    ChannelFactory,
    IncidentFactory,
    MaintenanceWindowFactory,
    MonitorFactory,
    NotificationFactory,
    RegionFactory,
    TeamFactory,
    UserFactory,
    member,
)

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "non-member", "viewer", "editor", "admin", "owner", "read-token", "write-token"]
# Marks every object of the team nobody here belongs to: it must never show.
FOREIGN = "zz-foreign-zz"
# Marks the walked team's objects: a non-member must never see them.
OURS = "qq-ours-qq"

# What each kind of route lets each role do. The success status of a write
# comes from the route; these say who gets it.
#   read:        any member (and the team's tokens) reads; a non-member gets a 404.
#   write:       editor and up, and a write token; viewer and read token 403; non-member 404 (400 on create).
#   team-owner:  only the team's owners (and their write token).
#   team-admin:  admins and owners (and the owner's write token).
#   team-admin-read: the same, and the owner's read token.
#   any-user:    every signed-in caller.
#   staff:       staff only (nobody here is staff: 403).
ANONYMOUS = 401


@dataclass(frozen=True)
class Route:
    rule: str
    success: int = 200
    body: str | None = None  # the name of a body in `bodies`
    target: str | None = None  # which object's id fills the path
    query: str = ""


ROUTES: dict[tuple[str, str], Route] = {
    ("get", "/api/v1/monitors/"): Route("any-user"),
    ("post", "/api/v1/monitors/"): Route("write", 201, "monitor"),
    ("get", "/api/v1/monitors/{id}/"): Route("read", target="monitor"),
    ("put", "/api/v1/monitors/{id}/"): Route("write", 200, "monitor", "monitor"),
    ("patch", "/api/v1/monitors/{id}/"): Route("write", 200, "rename", "monitor"),
    ("delete", "/api/v1/monitors/{id}/"): Route("write", 204, target="monitor"),
    ("get", "/api/v1/monitors/{id}/results/"): Route("read", target="monitor"),
    ("get", "/api/v1/monitors/{id}/pings/"): Route("read", target="heartbeat"),
    ("get", "/api/v1/monitors/{id}/uptime/"): Route("read", target="monitor"),
    ("get", "/api/v1/monitors/{id}/series/"): Route("read", target="monitor"),
    ("get", "/api/v1/channels/"): Route("any-user"),
    ("post", "/api/v1/channels/"): Route("write", 201, "channel"),
    ("get", "/api/v1/channels/{id}/"): Route("read", target="channel"),
    ("put", "/api/v1/channels/{id}/"): Route("write", 200, "channel", "channel"),
    ("patch", "/api/v1/channels/{id}/"): Route("write", 200, "rename", "channel"),
    ("delete", "/api/v1/channels/{id}/"): Route("write", 204, target="channel"),
    ("post", "/api/v1/channels/{id}/test/"): Route("write", 200, target="channel"),
    ("post", "/api/v1/channels/{id}/rotate-secret/"): Route("write", 200, target="webhook"),
    ("get", "/api/v1/escalation-policies/"): Route("any-user"),
    ("post", "/api/v1/escalation-policies/"): Route("write", 201, "policy"),
    ("get", "/api/v1/escalation-policies/{id}/"): Route("read", target="policy"),
    ("put", "/api/v1/escalation-policies/{id}/"): Route("write", 200, "policy", "policy"),
    ("patch", "/api/v1/escalation-policies/{id}/"): Route("write", 200, "rename", "policy"),
    ("delete", "/api/v1/escalation-policies/{id}/"): Route("write", 204, target="policy"),
    ("get", "/api/v1/maintenance-windows/"): Route("any-user"),
    ("post", "/api/v1/maintenance-windows/"): Route("write", 201, "window"),
    ("get", "/api/v1/maintenance-windows/{id}/"): Route("read", target="window"),
    ("put", "/api/v1/maintenance-windows/{id}/"): Route("write", 200, "window", "window"),
    ("patch", "/api/v1/maintenance-windows/{id}/"): Route("write", 200, "rename", "window"),
    ("delete", "/api/v1/maintenance-windows/{id}/"): Route("write", 204, target="window"),
    ("get", "/api/v1/incidents/"): Route("any-user"),
    ("get", "/api/v1/incidents/{id}/"): Route("read", target="incident"),
    ("post", "/api/v1/incidents/{id}/acknowledge/"): Route("write", 200, "note", "incident"),
    ("get", "/api/v1/notifications/"): Route("any-user"),
    ("get", "/api/v1/notifications/{id}/"): Route("read", target="notification"),
    ("get", "/api/v1/regions/"): Route("any-user"),
    ("get", "/api/v1/regions/{name}/"): Route("any-user", target="region"),
    ("get", "/api/v1/nodes/"): Route("staff"),
    ("get", "/api/v1/nodes/{name}/"): Route("staff", target="node"),
    ("post", "/api/v1/monitors/{id}/rotate-badge-token/"): Route("write", 200, target="monitor"),
    ("get", "/api/v1/status-pages/"): Route("any-user"),
    ("post", "/api/v1/status-pages/"): Route("write", 201, "page"),
    ("get", "/api/v1/status-pages/{id}/"): Route("read", target="page"),
    ("put", "/api/v1/status-pages/{id}/"): Route("write", 200, "page", "page"),
    ("patch", "/api/v1/status-pages/{id}/"): Route("write", 200, "rename", "page"),
    ("delete", "/api/v1/status-pages/{id}/"): Route("write", 204, target="page"),
    ("get", "/api/v1/status-reports/"): Route("any-user"),
    ("post", "/api/v1/status-reports/"): Route("write", 201, "report"),
    ("get", "/api/v1/status-reports/{id}/"): Route("read", target="report"),
    ("put", "/api/v1/status-reports/{id}/"): Route("write", 200, "report", "report"),
    ("patch", "/api/v1/status-reports/{id}/"): Route("write", 200, "retitle", "report"),
    ("delete", "/api/v1/status-reports/{id}/"): Route("write", 204, target="report"),
    ("post", "/api/v1/status-reports/{id}/updates/"): Route("write", 201, "report-update", "report"),
    ("get", "/api/v1/config/schema.json"): Route("public"),
    ("get", "/api/v1/config/export/"): Route("config-read", query="?team={team}"),
    ("post", "/api/v1/config/plan/"): Route("config-read", 200, "file"),
    # A stale revision: the walk sees who gets as far as the 409.
    ("post", "/api/v1/config/apply/"): Route("config-apply", 409, "stale-file"),
    ("get", "/api/v1/teams/"): Route("any-user"),
    ("post", "/api/v1/teams/"): Route("new-team", 201, "new-team"),
    ("get", "/api/v1/teams/{id}/"): Route("read", target="team"),
    ("put", "/api/v1/teams/{id}/"): Route("team-owner", 200, "rename", "team"),
    ("patch", "/api/v1/teams/{id}/"): Route("team-owner", 200, "rename", "team"),
    ("delete", "/api/v1/teams/{id}/"): Route("team-owner", 204, target="team"),
    ("get", "/api/v1/teams/{id}/members/"): Route("read", target="team"),
    ("post", "/api/v1/teams/{id}/members/"): Route("team-admin", 201, "member", "team"),
    ("patch", "/api/v1/teams/{id}/members/{member_id}/"): Route("team-admin", 200, "role", "membership"),
    ("delete", "/api/v1/teams/{id}/members/{member_id}/"): Route("team-admin", 204, target="membership"),
    ("get", "/api/v1/teams/{id}/invitations/"): Route("team-admin-read", target="team"),
    ("post", "/api/v1/teams/{id}/invitations/"): Route("team-admin", 201, "invitation", "team"),
    ("delete", "/api/v1/teams/{id}/invitations/{invitation_id}/"): Route("team-admin", 204, target="invitation"),
    ("get", "/api/v1/tokens/"): Route("any-user"),
    ("post", "/api/v1/tokens/"): Route("token-admin", 201, "token"),
    ("get", "/api/v1/tokens/{id}/"): Route("token-read", target="token"),
    ("delete", "/api/v1/tokens/{id}/"): Route("token-write", 204, target="token"),
    # Everyone administers their personal team, so the log itself answers
    # everyone; asking for this team's is for its admins and owners.
    ("get", "/api/v1/audit-log/"): Route("audit", query="?team={team}"),
    ("get", "/api/v1/audit-log/{id}/"): Route("token-read", target="entry"),
}


def expected(route: Route, role: str, method: str) -> int:
    if route.rule == "public":
        return route.success
    if role == "anonymous":
        return ANONYMOUS
    rule = route.rule
    writes = method != "get"
    if rule == "any-user":
        return route.success
    if rule == "staff":
        return 403
    if rule == "new-team":
        return 403 if role in ("read-token", "write-token") else route.success
    if rule == "read":
        return 404 if role == "non-member" else route.success
    if rule == "audit":
        return 403 if role in ("viewer", "editor") else route.success
    if rule == "config-read":  # a file's team: one the caller is not in is a 400 naming `team`
        return 400 if role == "non-member" else route.success
    if rule == "team-admin-read":
        return 404 if role == "non-member" else 403 if role in ("viewer", "editor") else route.success
    if role == "read-token" and writes:
        return 403
    if rule == "config-apply":
        return 400 if role == "non-member" else 403 if role == "viewer" else route.success
    if rule == "write":
        if role == "non-member":
            return 400 if route.target is None else 404
        return 403 if role == "viewer" else route.success
    if rule in ("team-owner", "team-admin"):
        allowed = {"owner", "write-token"} | ({"admin"} if rule == "team-admin" else set())
        return 404 if role == "non-member" else route.success if role in allowed else 403
    if rule == "token-admin":
        return 400 if role == "non-member" else route.success if role in ("admin", "owner", "write-token") else 403
    if rule in ("token-read", "token-write"):
        # Tokens are seen by their user and by the team's admins and owners; others do not find them.
        return route.success if role in ("admin", "owner", "write-token", "read-token") else 404
    raise AssertionError(f"unknown rule {rule}")


@pytest.fixture
def world(settings):
    settings.LOOPR_WEBHOOK_ALLOW_PRIVATE = True
    team = TeamFactory(name=f"walked {OURS}")
    users = {role: UserFactory(username=f"{role}-walker") for role in ("non-member", "viewer", "editor", "admin", "owner")}
    for role in ("viewer", "editor", "admin", "owner"):
        member(team, users[role], role)
    owner = users["owner"]
    region = RegionFactory(name="walk-region")
    objects = world_of(team, owner, OURS, region)
    # Another team, with the same kinds of objects, that none of the walkers belongs to.
    stranger = UserFactory(username="stranger-owner")
    foreign_team = TeamFactory(name=f"other {FOREIGN}")
    member(foreign_team, stranger, Role.OWNER)
    foreign = world_of(foreign_team, stranger, FOREIGN, region)
    clients = {"anonymous": APIClient()}
    for role, user in users.items():
        clients[role] = client_with(ApiToken.objects.issue(user, "walker")[1])
    clients["read-token"] = client_with(ApiToken.objects.issue(owner, "ro", team=team, scope=TokenScope.READ)[1])
    clients["write-token"] = client_with(ApiToken.objects.issue(owner, "rw", team=team, scope=TokenScope.WRITE)[1])
    objects["token"], _ = ApiToken.objects.issue(owner, f"victim {OURS}", team=team)
    objects["entry"] = AuditEntry.objects.create(team=team, actor=owner, actor_name=owner.username, action="update",
                                                 object_type="monitor", object_id=str(objects["monitor"].pk),
                                                 object_repr=f"monitor {OURS}")
    AuditEntry.objects.create(team=foreign_team, actor=stranger, actor_name=stranger.username, action="update",
                              object_type="monitor", object_id=str(foreign["monitor"].pk),
                              object_repr=f"monitor {FOREIGN}")
    extra = UserFactory(username="extra-viewer")
    objects["membership"] = member(team, extra, Role.VIEWER)
    UserFactory(username="joiner")
    objects["invitation"], _ = Invitation.objects.issue(team, f"{OURS}@example.com", Role.VIEWER, owner)
    Invitation.objects.issue(foreign_team, f"{FOREIGN}@example.com", Role.VIEWER, stranger)
    now = timezone.now()
    bodies = {
        "monitor": {"name": f"new {OURS}", "url": "http://127.0.0.1:9/", "team": team.pk},
        "rename": {"name": f"renamed {OURS}"},
        "new-team": {"name": "a team of their own"},
        "channel": {"name": f"new {OURS}", "kind": "email", "target": "ops@example.com", "team": team.pk},
        "policy": {"name": f"new {OURS}", "team": team.pk,
                   "steps": [{"after_minutes": 0, "channels": [objects["channel"].pk]}]},
        "window": {"name": f"new {OURS}", "kind": "once", "team": team.pk, "monitors": [objects["monitor"].pk],
                   "starts_at": (now + timedelta(days=1)).isoformat(),
                   "ends_at": (now + timedelta(days=1, hours=1)).isoformat()},
        "note": {"note": "on it"},
        "member": {"username": "joiner", "role": "viewer"},
        "invitation": {"email": "invitee@example.com", "role": "viewer"},
        "role": {"role": "editor"},
        "token": {"name": "new", "team": team.pk},
        "page": {"name": f"new {OURS}", "slug": "walked-new", "team": team.pk,
                 "components": [{"monitor": objects["monitor"].pk}]},
        "report": {"page": objects["page"].pk, "title": f"new {OURS}", "status": "investigating",
                   "message": "looking", "monitors": [objects["monitor"].pk]},
        "retitle": {"title": f"retitled {OURS}"},
        "file": {"team": team.pk, "monitors": []},
        "stale-file": {"team": team.pk, "monitors": [], "revision": "0" * 64},
        "report-update": {"status": "identified", "message": "found it"},
    }
    return {"team": team, "objects": objects, "foreign": foreign, "clients": clients, "bodies": bodies,
            "region": region}


def world_of(team, owner, mark: str, region) -> dict:
    monitor = MonitorFactory(owner=owner, team=team, name=f"monitor {mark}")
    heartbeat = MonitorFactory(owner=owner, team=team, name=f"heartbeat {mark}", kind="heartbeat", url="")
    channel = ChannelFactory(owner=owner, team=team, name=f"channel {mark}")
    webhook = ChannelFactory(owner=owner, team=team, name=f"webhook {mark}", kind="webhook",
                             target="http://127.0.0.1:9/hook", secret="whsec_dGVzdA==")
    incident = IncidentFactory(monitor=monitor, cause=f"cause {mark}")
    page = StatusPage.objects.create(owner=owner, team=team, name=f"page {mark}", slug=f"page-{team.pk}")
    Component.objects.create(page=page, monitor=monitor, name=f"component {mark}")
    report = StatusReport.objects.create(page=page, title=f"report {mark}")
    now = timezone.now()
    CheckResult.objects.create(monitor=monitor, region=region, scheduled_at=now, checked_at=now, ok=False,
                               error=f"error {mark}")
    Ping.objects.create(monitor=heartbeat, at=now, kind="success", method="POST", body=f"body {mark}")
    return {
        "monitor": monitor, "heartbeat": heartbeat, "channel": channel, "webhook": webhook, "incident": incident,
        "notification": NotificationFactory(channel=channel, monitor=monitor, last_error=f"error {mark}"),
        "policy": EscalationPolicy.objects.create(owner=owner, team=team, name=f"policy {mark}",
                                                  steps=[{"after_minutes": 0, "channels": [channel.pk]}]),
        "window": MaintenanceWindowFactory(owner=owner, team=team, name=f"window {mark}", monitors=[monitor]),
        "team": team, "region": region, "page": page, "report": report,
    }


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def schema_routes() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [(method, path) for path, operations in schema["paths"].items()
            for method in operations if method in ("get", "post", "put", "patch", "delete")]


def fill(path: str, route: Route, objects: dict) -> str:
    path += route.query.format(team=objects["team"].pk)
    if route.target is None:
        return path
    obj = objects[route.target]
    if route.target == "membership":
        return path.replace("{id}", str(obj.team_id)).replace("{member_id}", str(obj.pk))
    if route.target == "invitation":
        return path.replace("{id}", str(obj.team_id)).replace("{invitation_id}", str(obj.pk))
    key = obj.name if route.target in ("region", "node") else obj.pk
    return re.sub(r"\{[a-z_]+\}", str(key), path)


def call(client: APIClient, method: str, url: str, body: dict | None):
    # Each request in a transaction rolled back: the next role finds everything as it was.
    with transaction.atomic():
        response = getattr(client, method)(url, body, format="json") if body is not None else getattr(
            client, method)(url)
        transaction.set_rollback(True)
    return response


def test_every_route_answers_every_role_as_its_rule_says_and_nothing_leaks(world):
    routes = schema_routes()
    undeclared = sorted(set(routes) - set(ROUTES))
    assert not undeclared, f"Routes with no rule in ROUTES (say who may use them): {undeclared}"
    wrong, leaks = [], []
    objects = {**world["objects"], "node": None}
    for method, path in routes:
        route = ROUTES[(method, path)]
        if route.target == "node":
            continue  # no node here: staff-only is checked on the list
        url = fill(path, route, objects)
        body = world["bodies"][route.body] if route.body else None
        for role in ROLES:
            response = call(world["clients"][role], method, url, body)
            want = expected(route, role, method)
            if response.status_code != want:
                wrong.append(f"{role:11} {method.upper():6} {url}: {response.status_code}, expected {want} "
                             f"{response.content[:200]!r}")
            text = response.content.decode(errors="replace")
            if FOREIGN in text:
                leaks.append(f"{role} {method.upper()} {url} shows another team's object")
            if role == "non-member" and OURS in text:
                leaks.append(f"non-member {method.upper()} {url} shows the team's object")
    assert wrong == [], "\n".join(wrong)
    assert leaks == [], "\n".join(leaks)


@pytest.mark.parametrize("role", ROLES[1:])
def test_filters_by_another_teams_ids_find_nothing(world, role):
    client, foreign = world["clients"][role], world["foreign"]
    for url in (f"/api/v1/incidents/?monitor={foreign['monitor'].pk}",
                f"/api/v1/notifications/?monitor={foreign['monitor'].pk}",
                f"/api/v1/notifications/?channel={foreign['channel'].pk}",
                f"/api/v1/notifications/?incident={foreign['incident'].pk}",
                f"/api/v1/maintenance-windows/?monitor={foreign['monitor'].pk}"):
        response = client.get(url)
        assert response.status_code == 200 and response.json()["results"] == [], url
