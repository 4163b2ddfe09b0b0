"""Escalation policies: an outage's down alert goes to the first step, each
later step fires once when its delay has passed while the incident is open
and unacknowledged, through the outbox, driven by the `escalate` sweep."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from monitors import ingest
from monitors.acknowledgement import acknowledge
from monitors.models import Monitor
from notifications import services
from notifications.models import Escalation, EscalationPolicy, Notification
from tests.factories import ChannelFactory, MonitorFactory

pytestmark = pytest.mark.django_db

POLICIES = "/api/v1/escalation-policies/"


def result(monitor, slot, ok: bool) -> dict:
    return {
        "monitor": monitor.pk, "slot": slot.isoformat(), "started_at": (slot + timedelta(seconds=1)).isoformat(),
        "ok": ok, "latency_ms": 10.0, "status_code": 200 if ok else 503,
        "error_kind": "ok" if ok else "status", "error": "" if ok else "HTTP 503, expected 200-399",
    }


@pytest.fixture
def tiers(user):
    """Three channels: first line, second line, the boss; and a plain one on the monitor."""
    return {name: ChannelFactory(owner=user, name=name) for name in ("first", "second", "boss", "plain")}


@pytest.fixture
def policy(user, tiers):
    return EscalationPolicy.objects.create(owner=user, name="on-call", steps=[
        {"after_minutes": 0, "channels": [tiers["first"].pk]},
        {"after_minutes": 15, "channels": [tiers["second"].pk]},
        {"after_minutes": 45, "channels": [tiers["boss"].pk]},
    ])


def go_down(user, policy, tiers, at=None) -> Monitor:
    monitor = MonitorFactory(owner=user, retries=0, recovery_checks=1, interval=60, escalation_policy=policy)
    monitor.channels.set([tiers["plain"]])
    ingest.ingest_results("local", "probe@h", [result(monitor, at or timezone.now() - timedelta(minutes=1), False)])
    monitor.refresh_from_db()
    assert monitor.status == "down"
    return monitor


def told(monitor, event: str = "down") -> list[str]:
    return sorted(Notification.objects.filter(monitor=monitor, event=event).values_list("channel__name", flat=True))


def test_the_down_alert_goes_to_the_first_step_and_schedules_the_next(user, policy, tiers):
    monitor = go_down(user, policy, tiers)

    # The policy replaces the plain channels for the outage's down alert.
    assert told(monitor) == ["first"]
    escalation = Escalation.objects.get(incident=monitor.current_incident)
    assert escalation.due_at == monitor.current_incident.confirmed_at + timedelta(minutes=15)
    assert [f["step"] for f in escalation.fired] == [1]


def test_an_unacknowledged_incident_escalates_each_step_once_after_its_delay(user, policy, tiers):
    monitor = go_down(user, policy, tiers)
    confirmed = monitor.current_incident.confirmed_at

    # Not before its time.
    assert services.escalate(now=confirmed + timedelta(minutes=14)) == 0
    assert services.escalate(now=confirmed + timedelta(minutes=15)) == 1
    # Once: a second sweep at the same moment finds nothing due.
    assert services.escalate(now=confirmed + timedelta(minutes=16)) == 0
    assert told(monitor) == ["first", "second"]
    assert services.escalate(now=confirmed + timedelta(minutes=45)) == 1
    # Out of steps, and the policy does not repeat: it stops.
    assert services.escalate(now=confirmed + timedelta(days=1)) == 0
    assert told(monitor) == ["boss", "first", "second"]
    escalation = Escalation.objects.get()
    assert escalation.due_at is None and [f["step"] for f in escalation.fired] == [1, 2, 3]
    # The escalated alert says why it came.
    second = Notification.objects.get(monitor=monitor, channel=tiers["second"])
    assert second.context["details"].startswith("Escalation step 2 of 3: still unacknowledged")


def test_an_acknowledged_incident_never_escalates(user, policy, tiers):
    monitor = go_down(user, policy, tiers)
    acknowledge(monitor.current_incident_id, by="alice", via="api")

    assert services.escalate(now=timezone.now() + timedelta(days=1)) == 0

    assert told(monitor) == ["first"]
    # The acknowledgement went to whoever had been paged.
    assert told(monitor, "acknowledged") == ["first"]
    assert Escalation.objects.get().due_at is None


def test_a_resolved_incident_stops_escalating_and_its_recovery_goes_to_everyone_told(user, policy, tiers):
    monitor = go_down(user, policy, tiers)
    services.escalate(now=monitor.current_incident.confirmed_at + timedelta(minutes=15))

    ingest.ingest_results("local", "probe@h", [result(monitor, timezone.now(), True)])

    assert services.escalate(now=timezone.now() + timedelta(days=1)) == 0
    assert told(monitor) == ["first", "second"]
    assert told(monitor, "up") == ["first", "plain", "second"]


def test_a_sweep_that_dies_before_committing_leaves_the_step_to_fire_once_later(user, policy, tiers, monkeypatch):
    monitor = go_down(user, policy, tiers)
    due = monitor.current_incident.confirmed_at + timedelta(minutes=15)

    def die(self):
        raise SystemExit("worker killed")

    # Killed after writing the step's notification, before the transaction commits.
    with monkeypatch.context() as patch:
        patch.setattr(Escalation, "advance", die)
        with pytest.raises(SystemExit):
            services.escalate(now=due)
    assert told(monitor) == ["first"]

    # The next sweep sends it, once.
    assert services.escalate(now=due + timedelta(seconds=15)) == 1
    assert services.escalate(now=due + timedelta(seconds=30)) == 0
    assert told(monitor) == ["first", "second"]


def test_a_repeating_policy_starts_again_after_its_last_step(user, tiers):
    policy = EscalationPolicy.objects.create(owner=user, name="loop", repeat_minutes=10, steps=[
        {"after_minutes": 0, "channels": [tiers["first"].pk]},
        {"after_minutes": 5, "channels": [tiers["second"].pk]},
    ])
    monitor = go_down(user, policy, tiers)
    confirmed = monitor.current_incident.confirmed_at

    assert services.escalate(now=confirmed + timedelta(minutes=5)) == 1
    # Round two begins 10 minutes after the last step: the first step again, then the second.
    assert services.escalate(now=confirmed + timedelta(minutes=14)) == 0
    assert services.escalate(now=confirmed + timedelta(minutes=15)) == 1
    assert services.escalate(now=confirmed + timedelta(minutes=20)) == 1
    assert told(monitor) == ["first", "first", "second", "second"]
    assert [(f["round"], f["step"]) for f in Escalation.objects.get().fired] == [(0, 1), (0, 2), (1, 1), (1, 2)]


def test_an_idle_sweep_is_one_query(django_assert_num_queries):
    with django_assert_num_queries(1):
        assert services.escalate() == 0


def test_the_incident_shows_its_escalation(api, user, policy, tiers):
    monitor = go_down(user, policy, tiers)
    services.escalate(now=monitor.current_incident.confirmed_at + timedelta(minutes=15))

    body = api.get(f"/api/v1/incidents/{monitor.current_incident_id}/").json()

    assert body["escalation"]["policy"] == policy.pk
    assert [(f["step"], f["channels"]) for f in body["escalation"]["fired"]] == [
        (1, [tiers["first"].pk]), (2, [tiers["second"].pk])]
    assert body["escalation"]["next_step"] == 3


# --- the API ---------------------------------------------------------------------------


def test_a_policy_is_created_and_chosen_for_a_monitor(api, user, tiers):
    created = api.post(POLICIES, {"name": "on-call", "steps": [
        {"after_minutes": 0, "channels": [tiers["first"].pk]},
        {"after_minutes": 30, "channels": [tiers["second"].pk, tiers["boss"].pk]}]}, format="json")
    assert created.status_code == 201, created.json()

    monitor = api.post("/api/v1/monitors/", {"name": "shop", "url": "https://example.com/", "channels": [],
                                             "escalation_policy": created.json()["id"]}, format="json")

    assert monitor.status_code == 201, monitor.json()
    # A policy is enough for its alerts to reach someone.
    assert monitor.json()["escalation_policy"] == created.json()["id"] and monitor.json()["alerting"] is True


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"steps": []}, "steps", "1 to 10 steps"),
    ({"steps": [{"after_minutes": 0}]}, "steps", "Step 1: expected"),
    ({"steps": [{"after_minutes": 5, "channels": [1]}, {"after_minutes": 5, "channels": [1]}]}, "steps",
     "Step 2: after_minutes must be later"),
    ({"steps": [{"after_minutes": -1, "channels": [1]}]}, "steps", "whole number"),
    ({"steps": [{"after_minutes": 0, "channels": []}]}, "steps", "non-empty list"),
    ({"steps": [{"after_minutes": 0, "channels": [999999]}]}, "steps", "No channel of the team"),
    ({"steps": [{"after_minutes": 0, "channels": "FIRST"}], "repeat_minutes": 1}, "steps", "channels"),
])
def test_a_wrong_policy_is_a_400_naming_the_field(api, tiers, body, field, words):
    body = {"name": "p", **body}
    body["steps"] = [dict(step, channels=[tiers["first"].pk if pk == 1 else pk for pk in step["channels"]])
                     if isinstance(step.get("channels"), list) else step for step in body["steps"]]

    response = api.post(POLICIES, body, format="json")

    assert response.status_code == 400
    assert field in response.json() and words in " ".join(response.json()[field])


def test_repeating_more_often_than_every_five_minutes_is_refused(api, tiers):
    response = api.post(POLICIES, {"name": "p", "repeat_minutes": 1, "steps": [
        {"after_minutes": 0, "channels": [tiers["first"].pk]}]}, format="json")

    assert response.status_code == 400 and list(response.json()) == ["repeat_minutes"]


def test_another_users_channels_and_policies_cannot_be_used(api, other_user, tiers):
    theirs = ChannelFactory(owner=other_user)
    their_policy = EscalationPolicy.objects.create(owner=other_user, name="theirs", steps=[
        {"after_minutes": 0, "channels": [theirs.pk]}])

    step = api.post(POLICIES, {"name": "p", "steps": [{"after_minutes": 0, "channels": [theirs.pk]}]}, format="json")
    monitor = api.post("/api/v1/monitors/", {"name": "m", "url": "https://example.com/",
                                             "escalation_policy": their_policy.pk}, format="json")

    assert step.status_code == 400 and "No channel of the team" in step.json()["steps"][0]
    assert monitor.status_code == 400 and list(monitor.json()) == ["escalation_policy"]
    assert api.get(f"{POLICIES}{their_policy.pk}/").status_code == 404


# --- two sweeps at once ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_sweeps_at_once_fire_a_step_once(user, policy, tiers):
    monitor = go_down(user, policy, tiers)
    due = monitor.current_incident.confirmed_at + timedelta(minutes=15)
    results: list[int] = []
    start = threading.Barrier(2)

    def sweep():
        try:
            start.wait()
            results.append(services.escalate(now=due))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # One of them sent the step; the other, behind the monitor's lock, found it no longer due.
    assert sorted(results) == [0, 1]
    assert told(monitor) == ["first", "second"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_a_recovery_ingested_while_the_sweep_runs_wins_and_the_step_is_not_sent(user, policy, tiers, monkeypatch):
    from tests.notifications.test_lock_order import run_in_thread, wait_for_a_blocked_backend

    monitor = go_down(user, policy, tiers)
    due = monitor.current_incident.confirmed_at + timedelta(minutes=15)
    ingest_holds_the_monitor, sweep_was_blocked = threading.Event(), []
    insert_new_results = ingest.insert_new_results

    def insert_once_the_sweep_is_blocked(*args, **kwargs):
        # Ingest has locked the monitor and is about to resolve the incident.
        ingest_holds_the_monitor.set()
        sweep_was_blocked.append(wait_for_a_blocked_backend())
        return insert_new_results(*args, **kwargs)

    monkeypatch.setattr(ingest, "insert_new_results", insert_once_the_sweep_is_blocked)

    def sweep():
        assert ingest_holds_the_monitor.wait(10)
        services.escalate(now=due)

    errors: list[Exception] = []
    threads = [run_in_thread(lambda: ingest.ingest_results("local", "probe@h", [result(monitor, timezone.now(), True)]),
                             errors),
               run_in_thread(sweep, errors)]
    for thread in threads:
        thread.join(30)

    # The sweep waited behind the monitor's lock, neither deadlocked, and the
    # step of an outage that had just ended was never sent.
    assert sweep_was_blocked == [True] and errors == []
    assert told(monitor) == ["first"]
    assert Escalation.objects.get().due_at is None
