"""Results survive a database or broker outage: ingest and heartbeats are
tried again with backoff, and a probe keeps results it could not publish."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from monitors.models import CheckResult
from tests.factories import MonitorFactory
from tests.support.processes import wait_for
from tests.support.proxy import Cuttable
from workers import publish
from workers.models import NodeToken
from workers import reports
from workers.tasks import ingest_results


def a_result(monitor, slot) -> dict:
    return {"monitor": monitor.pk, "slot": slot.isoformat(), "started_at": slot.isoformat(), "ok": True,
            "latency_ms": 5.0, "status_code": 200, "error_kind": "ok", "error": "", "tls_expires_at": None}


@pytest.mark.e2e
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a database behind a TCP proxy")
def test_results_sent_while_the_database_is_away_are_stored_once_it_is_back(processes):
    s = connection.settings_dict
    proxy = Cuttable((s["HOST"] or "127.0.0.1", int(s["PORT"] or 5432)))
    try:
        monitor = MonitorFactory(interval=60)
        _, token = NodeToken.issue("local")
        url = processes.base_env["DATABASE_URL"].replace(f":{s['PORT'] or 5432}/", f":{proxy.port}/")
        assert str(proxy.port) in url
        processes.central(DATABASE_URL=url)
        # The worker is up once a first message is ingested through the proxy.
        slot = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
        ingest_results.apply_async(args=[reports.sign("results", "local", "n@h", [a_result(monitor, slot)], token)])
        wait_for(lambda: CheckResult.objects.filter(monitor=monitor).count() == 1, timeout=60,
                 message="the first result")

        proxy.cut()
        later = slot + timedelta(minutes=1)
        ingest_results.apply_async(args=[reports.sign("results", "local", "n@h", [a_result(monitor, later)], token)])
        # It fails, and is published again instead of being acknowledged and lost.
        wait_for(lambda: "retry 2 of" in processes.log_text(), timeout=30, message="a second retry")
        assert not CheckResult.objects.filter(monitor=monitor, scheduled_at=later).exists()

        proxy.restore()
        wait_for(lambda: CheckResult.objects.filter(monitor=monitor, scheduled_at=later).exists(), timeout=60,
                 message="the result sent during the outage")
    finally:
        proxy.close()


class FlakyBroker:
    """A stand-in for a broker that refuses `failures` publishes, then takes them."""

    def __init__(self, failures: int) -> None:
        self.failures, self.received = failures, []

    def send(self, results: list[dict]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.received.append(list(results))


def test_a_probe_keeps_results_it_could_not_publish_and_sends_them_with_the_next():
    broker = FlakyBroker(failures=1)
    sender = publish.ResultSender(broker.send)
    sender([{"n": 1}])
    assert broker.received == [] and sender.pending == [{"n": 1}]
    sender([{"n": 2}])
    assert broker.received == [[{"n": 1}, {"n": 2}]] and sender.pending == []


def test_at_the_end_of_a_batch_a_probe_waits_for_the_broker_with_growing_jittered_pauses():
    broker, waits = FlakyBroker(failures=4), []
    sender = publish.ResultSender(broker.send, sleep=waits.append)
    sender([{"n": 1}])
    assert sender.close() == 0
    assert broker.received == [[{"n": 1}]]
    # Each pause within the upper half of 1, 2, 4 s: growing, never in lockstep.
    assert len(waits) == 3 and all(2 ** k / 2 <= w <= 2 ** k for k, w in enumerate(waits))


def test_a_probe_gives_up_on_its_results_only_after_its_patience():
    broker = FlakyBroker(failures=10 ** 6)
    clock = [0.0]
    sender = publish.ResultSender(broker.send, patience=300, sleep=lambda s: clock.__setitem__(0, clock[0] + s),
                                  clock=lambda: clock[0])
    sender([{"n": 1}, {"n": 2}])
    assert sender.close() == 2
    # Minutes of trying (a broker restart), not a moment.
    assert 300 - 30 <= clock[0] <= 300
