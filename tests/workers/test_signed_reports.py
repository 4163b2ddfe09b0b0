"""A node proves who it is by signing its reports; its token never travels."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from monitors.models import CheckResult
from tests.factories import MonitorFactory
from tests.support.processes import wait_for
from workers import reports
from workers.models import NodeToken, Rejection, WorkerNode
from workers.tasks import ingest_results, record_heartbeat

pytestmark = pytest.mark.django_db


def result(monitor) -> dict:
    now = timezone.now().isoformat()
    return {"monitor": monitor.pk, "slot": now, "started_at": now, "ok": True, "error_kind": "ok"}


def test_a_signed_report_is_stored_and_carries_neither_the_token_nor_its_hash():
    issued, token = NodeToken.issue("eu-west")
    monitor = MonitorFactory()
    report = reports.sign("results", "eu-west", "n1@h", [result(monitor)], token)
    wire = json.dumps(report)
    assert token not in wire and issued.key_hash not in wire
    assert ingest_results(report)["stored"] == 1


@pytest.mark.parametrize("tamper,reason", [
    (lambda r: r.update(body=r["body"].replace('"ok":true', '"ok":false')), "bad signature"),
    (lambda r: r.update(region="us-east"), "unknown token"),  # another region's name, same key
    (lambda r: r.update(node="someone-else@h"), "bad signature"),
    (lambda r: r.update(ts=r["ts"] - 1), "bad signature"),
    (lambda r: r.update(key="0" * 32), "unknown token"),
    (lambda r: r.update(sig="0" * 64), "bad signature"),
    (lambda r: r.update(v=2), "malformed report"),
    (lambda r: r.pop("sig"), "malformed report"),
])
def test_a_tampered_report_is_refused_before_any_row_is_read(tamper, reason):
    NodeToken.issue("us-east")
    _, token = NodeToken.issue("eu-west")
    monitor = MonitorFactory()
    report = reports.sign("results", "eu-west", "n1@h", [result(monitor)], token)
    tamper(report)
    assert ingest_results(report) == {"refused": reason}
    assert CheckResult.objects.count() == 0


def test_a_stale_or_future_report_is_refused(settings):
    settings.LOOPR_REPORT_MAX_AGE = 600
    _, token = NodeToken.issue("eu-west")
    monitor = MonitorFactory()
    old = reports.sign("results", "eu-west", "n1@h", [result(monitor)], token, now=time.time() - 601)
    ahead = reports.sign("results", "eu-west", "n1@h", [result(monitor)], token, now=time.time() + 600)
    assert ingest_results(old) == {"refused": "stale report"}
    assert ingest_results(ahead) == {"refused": "report from the future"}


def test_a_replayed_heartbeat_is_refused_and_revocation_is_immediate():
    issued, token = NodeToken.issue("eu-west")
    report = reports.sign("heartbeat", "eu-west", "n1@h", {"version": "1"}, token)
    assert record_heartbeat(report) is True
    assert record_heartbeat(report) is False
    assert Rejection.objects.get().reason == "heartbeat: replayed report"
    issued.revoke()
    monitor = MonitorFactory()
    assert ingest_results(reports.sign("results", "eu-west", "n1@h", [result(monitor)], token)) == {
        "refused": "revoked token"}
    assert WorkerNode.objects.get().state == "revoked"


def test_forged_reports_under_fresh_names_add_no_rejection_rows():
    NodeToken.issue("eu-west")
    for i in range(200):
        ingest_results(reports.sign("results", "eu-west", f"rogue-{i}@h", [], "lnt_forged"))
        ingest_results(reports.sign("results", f"made-up-{i}", f"rogue-{i}@h", [], "lnt_forged"))
        record_heartbeat(reports.sign("heartbeat", f"made-up-{i}", f"rogue-{i}@h", {}, "lnt_forged"))
    # One row per (known region or "(unknown)", reason), each counting all.
    rows = {(r.node, r.region, r.reason): r.count for r in Rejection.objects.all()}
    assert rows == {
        ("(unverified)", "eu-west", "unknown token"): 200,
        ("(unverified)", "(unknown)", "unknown token"): 200,
        ("(unverified)", "(unknown)", "heartbeat: unknown token"): 200,
    }


@pytest.mark.e2e
def test_no_token_or_signing_key_crosses_the_broker_while_a_node_reports(processes, target):
    issued, token = NodeToken.issue("local")
    monitor = MonitorFactory(url=target.url("/"), interval=1, timeout=0.8)
    seen: list[bytes] = []
    stop = threading.Event()

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=None)
    db = client.connection_pool.connection_kwargs.get("db", 0)

    def watch() -> None:
        # MONITOR shows every database of the server; ours is the one to read.
        with client.monitor() as m:
            for command in m.listen():
                if command.get("db") == db:
                    seen.append(command["command"].encode())
                if stop.is_set():
                    return

    threading.Thread(target=watch, daemon=True).start()
    time.sleep(0.5)
    processes.central()
    processes.probe("probe1", LOOPR_NODE_TOKEN=token)
    processes.beat()
    wait_for(lambda: CheckResult.objects.filter(monitor=monitor).count() >= 3, timeout=60, message="results")
    stop.set()
    redis.Redis.from_url(settings.REDIS_URL).ping()  # one more command, so that the watcher sees stop
    traffic = b"\n".join(seen)
    # Reports and heartbeats went through the broker, signed, and neither
    # the token nor the key it derives appears in any command.
    assert b"loopr-key-id" not in traffic and b"monitors.ingest_results" in traffic
    assert b"workers.record_heartbeat" in traffic
    assert token.encode() not in traffic and issued.key_hash.encode() not in traffic
    assert WorkerNode.objects.get(name__startswith="probe1@").token == issued
