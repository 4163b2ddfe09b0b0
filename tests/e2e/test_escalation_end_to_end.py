"""Escalation and acknowledgement through real processes: beat, the central
worker (which runs the escalation sweep), probe and notify workers, and real
webhook receivers on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest

from monitors.acknowledgement import acknowledge
from notifications.models import Channel, Escalation, EscalationPolicy
from notifications.transports.webhook import generate_secret
from django.utils import timezone

from tests.e2e.test_alerts_end_to_end import receivers, start_system  # noqa: F401 (a fixture)
from tests.factories import MonitorFactory, UserFactory
from tests.support.processes import wait_for

pytestmark = pytest.mark.e2e


def events(receiver) -> list[str]:
    return [json.loads(body)["data"]["event"] for _, body in receiver.requests]


def test_an_unacknowledged_outage_escalates_once_even_across_a_killed_worker_and_an_acknowledged_one_never(
    processes, target, receivers  # noqa: F811
):
    owner = UserFactory(username="ops")

    def hook(name: str, receiver) -> Channel:
        return Channel.objects.create(owner=owner, name=name, kind="webhook", target=receiver.url,
                                      secret=generate_secret())

    first_a, second_a, first_b, second_b = (receivers(200) for _ in range(4))
    policies = [
        EscalationPolicy.objects.create(owner=owner, name=f"policy {name}", steps=[
            {"after_minutes": 0, "channels": [hook(f"first {name}", first).pk]},
            {"after_minutes": 1, "channels": [hook(f"second {name}", second).pk]},
        ])
        for name, first, second in (("a", first_a, second_a), ("b", first_b, second_b))
    ]
    target.behave(status=503)
    env = start_system(processes)
    unacknowledged, acknowledged = (
        MonitorFactory(owner=owner, url=target.url("/"), interval=1, timeout=0.8, retries=1,
                       next_check_at=timezone.now(), escalation_policy=policy)
        for policy in policies
    )

    # Both outages page their first step at once.
    wait_for(lambda: events(first_a) == ["down"] and events(first_b) == ["down"], timeout=40,
             message="both first steps paged")
    acknowledged.refresh_from_db()
    acknowledge(acknowledged.current_incident_id, by="bob", via="api", note="on it")
    wait_for(lambda: events(first_b) == ["down", "acknowledged"], timeout=20, message="the acknowledgement told")

    # The worker that runs the sweep dies before the second step is due, and
    # comes back after it: the step is still sent.
    processes.kill("central")
    due = Escalation.objects.get(incident__monitor=unacknowledged).due_at
    time.sleep(max(0.0, (due - timezone.now()).total_seconds()) + 5)
    assert second_a.requests == []
    processes.central(name="central2", **env)
    wait_for(lambda: len(second_a.requests) == 1, timeout=60, message="the second step")

    # Once: sweeps keep running every 15 s, and nothing more arrives.
    time.sleep(35)
    assert events(second_a) == ["down"]
    payload = json.loads(second_a.requests[0][1])
    assert payload["data"]["details"].startswith("Escalation step 2 of 2")
    assert payload["data"]["acknowledge_url"]
    # The acknowledged outage never reached its second step.
    assert second_b.requests == []
    assert Escalation.objects.get(incident__monitor=acknowledged).due_at is None
