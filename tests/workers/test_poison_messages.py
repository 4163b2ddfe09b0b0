"""No message stops a worker: malformed messages pushed raw onto every queue
are dropped and counted, never requeued, and the workers keep consuming."""

from __future__ import annotations

import base64
import copy
import json
import pickle
import time

import pytest
import redis
from django.conf import settings

from loopr.broker import DROPPED_KEY_PREFIX, MAX_MESSAGE_BYTES
from monitors.models import CheckResult
from tests.factories import MonitorFactory
from tests.support.processes import wait_for
from workers import reports
from workers.models import WorkerNode

pytestmark = pytest.mark.e2e

QUEUES = ["probe.local", "ingest", "heartbeat", "central"]


def template(queue: str) -> dict:
    """A real kombu envelope of the task that queue carries, as Celery sent it."""
    from workers import tasks

    sample = {
        "probe.local": (tasks.run_probe_batch, [[]], {}),
        "ingest": (tasks.ingest_results, [reports.sign("results", "local", "n@h", [], "lnt_x")], {}),
        "heartbeat": (tasks.record_heartbeat, [reports.sign("heartbeat", "local", "n@h", {}, "lnt_x")], {}),
        "central": (tasks.mark_offline_nodes, [], {}),
    }[queue]
    scratch = f"template-{queue}"
    sample[0].apply_async(args=sample[1], kwargs=sample[2], queue=scratch)
    envelope = json.loads(broker().rpop(scratch))
    envelope["properties"]["delivery_info"]["routing_key"] = queue
    return envelope


def body(value) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def with_(envelope: dict, change) -> bytes:
    copied = copy.deepcopy(envelope)
    change(copied)
    return json.dumps(copied).encode()


def shapes(good: dict) -> dict[str, bytes]:
    """Every kind of malformed message, as the bytes pushed onto the queue."""
    headers = lambda **kw: lambda e: e["headers"].update(kw)  # noqa: E731
    return {
        # Not an envelope at all.
        "raw bytes": b"\x80\x81\xfe\xff\x00 not even text",
        "text that is not JSON": b"hello",
        "a JSON string": b'"x"',
        "a JSON list": b"[1]",
        "JSON null": b"null",
        "deeply nested JSON": b"[" * 200_000 + b"]" * 200_000,
        # An envelope kombu cannot read.
        "no properties": with_(good, lambda e: e.pop("properties")),
        "properties a list": with_(good, lambda e: e.update(properties=[1])),
        "no delivery tag": with_(good, lambda e: e["properties"].pop("delivery_tag")),
        "no delivery info": with_(good, lambda e: e["properties"].pop("delivery_info")),
        "body not base64": with_(good, lambda e: e.update(body="!!! not base64 !!!")),
        "body a number": with_(good, lambda e: e.update(body=5)),
        # A Celery message Celery cannot run.
        "headers a list": with_(good, lambda e: e.update(headers=[1, 2])),
        "headers empty": with_(good, lambda e: e.update(headers={})),
        "task not a string": with_(good, headers(task=5)),
        "unknown task": with_(good, headers(task="os.system")),
        "no id": with_(good, lambda e: e["headers"].pop("id")),
        "timelimit x": with_(good, headers(timelimit="x")),
        "timelimit of three": with_(good, headers(timelimit=[1, 2, 3])),
        "timelimit not numbers": with_(good, headers(timelimit=["a", None])),
        "eta a number": with_(good, headers(eta=5)),
        "argsrepr a list": with_(good, headers(argsrepr=[1])),
        "body x": with_(good, lambda e: e.update(body=body("x"))),
        "body [1]": with_(good, lambda e: e.update(body=body([1]))),
        "body not JSON": with_(good, lambda e: e.update(body=base64.b64encode(b"{").decode())),
        "body deeply nested": with_(good, lambda e: e.update(body=base64.b64encode(b"[" * 100_000).decode())),
        "args not a list": with_(good, lambda e: e.update(body=body([1, {}, {}]))),
        "too many arguments": with_(good, lambda e: e.update(body=body([[1, 2, 3, 4, 5, 6], {}, {}]))),
        "an unknown keyword": with_(good, lambda e: e.update(body=body([[], {"surprise": 1}, {}]))),
        "a chained task": with_(good, lambda e: e.update(body=body(
            [[], {}, {"callbacks": [{"task": "workers.dispatch_due_checks", "args": [], "kwargs": {}}]}]))),
        "pickle": with_(good, lambda e: e.update({"content-type": "application/x-python-serialize",
                                                  "body": base64.b64encode(pickle.dumps(([], {}, {}))).decode()})),
    }


def broker() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def dropped(queue: str) -> int:
    return sum(int(v) for v in broker().hgetall(DROPPED_KEY_PREFIX + queue).values())


def test_it_drops_every_malformed_message_on_every_queue_and_keeps_checking(processes, target):
    r = broker()
    poison = {queue: shapes(template(queue)) for queue in QUEUES}
    # Wrong argument types for the task at hand.
    poison["probe.local"]["checks not a list"] = with_(template("probe.local"), lambda e: e.update(
        body=body([["x"], {}, {}])))
    for queue, messages in poison.items():
        for message in messages.values():
            r.lpush(queue, message)
    # Remote-control broadcasts that are JSON but not envelopes.
    processes.central()
    processes.probe("probe1")
    processes.beat()

    # Every message is dropped and counted, none is left on its queue or in
    # kombu's unacked hash to kill a worker at the next start.
    for queue, messages in poison.items():
        wait_for(lambda: dropped(queue) == len(messages), timeout=60,
                 message=f"{len(messages)} drops on {queue} (have {dropped(queue)})")
    for queue, messages in poison.items():
        assert not set(r.lrange(queue, 0, -1)) & set(messages.values()), queue
    held = [json.loads(entry)[0] for entry in r.hvals("unacked")]
    assert not [e for e in held if json.dumps(e).encode() in set().union(*map(set, (m.values() for m in poison.values())))]
    # Both workers are alive and real checks flow through them.
    assert all(proc.poll() is None for proc in processes.procs.values())
    monitor = MonitorFactory(url=target.url("/health"), interval=1, timeout=0.8)
    wait_for(lambda: CheckResult.objects.filter(monitor=monitor).count() >= 2, timeout=60,
             message="results after the poison")
    # A log line carries a bounded excerpt, never the whole message.
    longest = max(len(line) for line in processes.log_text().splitlines())
    assert longest < 2000, longest


def test_a_poison_message_left_on_a_queue_does_not_kill_a_restarted_worker(processes):
    r = broker()
    good = template("ingest")
    processes.central()
    wait_for(lambda: r.exists(DROPPED_KEY_PREFIX + "ingest") or _consuming(processes), timeout=60,
             message="the central worker to start")
    # A huge message and a [1] envelope, pushed while the worker runs; then a
    # restart with more of the same waiting for it.
    r.lpush("ingest", b"[1]", with_(good, lambda e: e.update(body=body([1]))))
    wait_for(lambda: dropped("ingest") == 2, timeout=30, message="two drops")
    processes.kill("central", sig=15)
    r.lpush("ingest", b"[1]", b"x" * (MAX_MESSAGE_BYTES + 1), with_(good, lambda e: e.update(body=body("x"))))
    processes.central()
    wait_for(lambda: dropped("ingest") == 5, timeout=60, message="three more drops after the restart")
    time.sleep(1)
    assert processes.procs["central"].poll() is None
    assert r.llen("ingest") == 0
    # And it still does its work: a heartbeat with a valid token is recorded.
    from workers.models import NodeToken
    from workers.tasks import record_heartbeat

    _, token = NodeToken.issue("local")
    record_heartbeat.apply_async(args=[reports.sign("heartbeat", "local", "alive@h", {}, token)])
    wait_for(lambda: WorkerNode.objects.filter(name="alive@h").exists(), timeout=30, message="a heartbeat")


def _consuming(processes) -> bool:
    return "ready" in processes.log_text()


def test_a_broadcast_that_is_not_an_envelope_does_not_kill_a_worker(processes):
    r = broker()
    processes.probe("probe1")
    wait_for(lambda: _consuming(processes), timeout=60, message="the probe worker to start")
    db = r.connection_pool.connection_kwargs.get("db", 0)

    def dropped() -> bool:
        if "dropped a malformed message from queue fanout:celery.pidbox" in processes.log_text():
            return True
        # A broadcast reaches only who subscribed before it was sent, and
        # the worker may say "ready" before its remote control subscribes:
        # sent again until one arrives.
        for payload in (b"[1]", b'{"properties": 1}', b'"x"', b"not json"):
            r.publish(f"/{db}.celery.pidbox", payload)
        return False

    wait_for(dropped, timeout=30, message="the broadcast to be dropped")
    time.sleep(1)
    assert processes.procs["probe1"].poll() is None


def test_the_verbose_health_check_shows_the_dropped_messages(client, db):
    r = broker()
    r.delete(DROPPED_KEY_PREFIX + "ingest")
    r.hincrby(DROPPED_KEY_PREFIX + "ingest", "body is not [args, kwargs, embed]", 3)
    body = client.get("/healthz?verbose=1").json()
    assert body["dropped_messages"]["ingest"] == {"body is not [args, kwargs, embed]": 3}
    r.delete(DROPPED_KEY_PREFIX + "ingest")
