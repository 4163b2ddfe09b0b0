"""A probe node's Redis user can do its job and nothing else (a redis-server
of the test's own, never the shared one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.utils import timezone

from monitors.models import CheckResult
from tests.factories import MonitorFactory
from tests.fleet.harness import free_port
from tests.support.processes import CELERY, wait_for
from workers import broker_acl
from workers.models import NodeToken, WorkerNode

pytestmark = pytest.mark.django_db(transaction=True)


def system_redis_server() -> str:
    """The machine's redis-server (7 here), not the quick start's embedded
    6.2 that `dev.py test` puts first on PATH: write-only key patterns
    (`%W~`), which a node's user needs, came with Redis 7."""
    venv_bin = os.path.realpath(Path(sys.executable).parent)
    path = os.pathsep.join(entry for entry in os.environ.get("PATH", "").split(os.pathsep)
                           if entry and os.path.realpath(entry) != venv_bin)
    found = shutil.which("redis-server", path=path)
    if found is None:
        pytest.fail("these tests need the machine's redis-server 7 (.ci/run checks that it is installed)")
    return found


class PrivateRedis:
    def __init__(self, directory: Path, binary: str = "", extra: list[str] | None = None):
        binary = binary or system_redis_server()
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(directory), *(extra or [])],
            stdout=open(directory / "redis.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.admin = redis.Redis(port=self.port, socket_timeout=5)
        wait_for(self._ready, timeout=10, interval=0.05, message="redis-server")

    def _ready(self) -> bool:
        try:
            return bool(self.admin.ping())
        except redis.ConnectionError:
            return False

    def url(self, user: str = "", password: str = "") -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    yield server
    server.stop()


def node_client(server: PrivateRedis, region: str, token: str) -> redis.Redis:
    return redis.Redis(port=server.port, username=broker_acl.username(region), password=token, socket_timeout=5)


def test_a_node_user_is_refused_everything_but_its_job(private_redis):
    _, token = NodeToken.issue("eu")
    NodeToken.issue("us")
    NodeToken.sync_broker_users(client=private_redis.admin)
    node = node_client(private_redis, "eu", token)
    sep = broker_acl.SEP

    # Its job: take from its own queue (and its priority lists), report,
    # keep its own unacked bookkeeping, listen for remote control.
    node.lpush("probe.eu", b"x")
    assert node.brpop(["probe.eu", f"probe.eu{sep}3"], timeout=1)
    node.lpush(f"probe.eu{sep}9", b"y")
    assert node.brpop([f"probe.eu{sep}9"], timeout=1)
    node.lpush("ingest", b"r")
    node.lpush("heartbeat", b"h")
    node.hset("unacked.eu", "tag", b"m")
    node.zadd("unacked_index.eu", {"tag": 1.0})
    assert node.set("unacked_mutex.eu", b"1", nx=True, ex=5)
    pubsub = node.pubsub()
    pubsub.psubscribe("/0.celery.pidbox")
    assert pubsub.get_message(timeout=1)["type"] == "psubscribe"

    # Everything else is refused.
    forbidden = {
        "read the result queue": lambda: node.lrange("ingest", 0, -1),
        "take from the result queue": lambda: node.brpop(["ingest"], timeout=1),
        "read another region's queue": lambda: node.lrange("probe.us", 0, -1),
        "take from a region whose name starts like its own": lambda: node.brpop(["probe.eu-west"], timeout=1),
        "take another region's checks": lambda: node.brpop(["probe.us"], timeout=1),
        "inject into another region's queue": lambda: node.lpush("probe.us", b"x"),
        "inject into the central queue": lambda: node.lpush("central", b"x"),
        "inject into the notify queue": lambda: node.lpush("notify", b"x"),
        "read the central's unacked messages": lambda: node.hgetall("unacked"),
        "read another region's unacked messages": lambda: node.hgetall("unacked.us"),
        "send a remote-control command": lambda: node.publish("/0.celery.pidbox", b"{}"),
        "list keys": lambda: node.keys("*"),
        "scan keys": lambda: node.scan(0),
        "flush the database": lambda: node.flushdb(),
        "flush everything": lambda: node.flushall(),
        "read the configuration": lambda: node.config_get("*"),
        "monitor": lambda: node.execute_command("MONITOR"),
        "run a script": lambda: node.eval("return 1", 0),
        "list the users": lambda: node.acl_list(),
        "read a queue's binding set": lambda: node.smembers("_kombu.binding.central"),
    }
    allowed = []
    for name, attempt in forbidden.items():
        try:
            attempt()
            allowed.append(name)
        except redis.exceptions.NoPermissionError:
            pass
    assert allowed == []
    # What remains: Redis 7 lets a write-only key's length be read (LLEN
    # touches no data), so a node can see how many reports wait on ingest.
    assert node.llen("ingest") >= 1
    # And `*.celery.pidbox` (its own remote-control list) also matches the
    # pidbox binding set, which names the workers listening.
    node.smembers("_kombu.binding.celery.pidbox")
    # Another region's token is not this region's password.
    with pytest.raises(redis.exceptions.AuthenticationError):
        node_client(private_redis, "us", token).ping()


def test_revoking_a_token_locks_its_node_out_of_the_broker(private_redis, settings):
    settings.LOOPR_BROKER_ACL = True
    settings.REDIS_URL = private_redis.url()
    issued, token = NodeToken.issue("eu")
    assert node_client(private_redis, "eu", token).ping()
    issued.revoke()
    with pytest.raises(redis.exceptions.AuthenticationError):
        node_client(private_redis, "eu", token).ping()


@pytest.mark.e2e
def test_a_node_with_its_region_user_checks_reports_and_obeys_a_drain(processes, private_redis, target):
    _, token = NodeToken.issue("eu")
    NodeToken.sync_broker_users(client=private_redis.admin)
    processes.central(REDIS_URL=private_redis.url())
    processes.probe("eu1", region="eu", LOOPR_NODE_TOKEN=token,
                    REDIS_URL=private_redis.url(broker_acl.username("eu"), token))
    # Its heartbeat is accepted: it wrote to `heartbeat`, signed.
    wait_for(lambda: WorkerNode.objects.filter(name__startswith="eu1@").exists(), timeout=60,
             message="the node's heartbeat")
    monitor = MonitorFactory(url=target.url("/"), timeout=2)
    check = {"monitor": monitor.pk, "slot": timezone.now().isoformat(), "url": target.url("/"), "timeout": 2,
             "interval": 60}
    from loopr.celery import app
    from workers.tasks import run_probe_batch

    with app.connection_for_write(private_redis.url()) as conn:
        run_probe_batch.apply_async(args=[[check]], queue="probe.eu", connection=conn)
        wait_for(lambda: CheckResult.objects.filter(monitor=monitor).exists(), timeout=30, message="its result")
    # It still receives remote control: the operator drains it (from the
    # central's side, as `celery control`), it answers and takes nothing more.
    name = WorkerNode.objects.get().name
    control = subprocess.run(
        [CELERY, "-A", "loopr", "control", "cancel_consumer", "probe.eu", "--destination", name, "--timeout", "5"],
        env={**os.environ, "REDIS_URL": private_redis.url()}, capture_output=True, text=True, timeout=60)
    assert "no longer consuming from probe.eu" in control.stdout, control.stdout + control.stderr
    with app.connection_for_write(private_redis.url()) as conn:
        run_probe_batch.apply_async(args=[[check]], queue="probe.eu", connection=conn)
    time.sleep(3)
    assert private_redis.admin.llen("probe.eu") == 1
    # And in all that it was never refused anything: its user is complete.
    denied = [entry for entry in private_redis.admin.acl_log() if entry["username"] == broker_acl.username("eu")]
    assert denied == []
    assert all(proc.poll() is None for proc in processes.procs.values())


def test_the_broker_acl_command_prints_each_regions_user_and_applies_it(private_redis, settings):
    from io import StringIO

    from django.core.management import call_command

    issued, token = NodeToken.issue("eu")
    out = StringIO()
    call_command("broker_acl", stdout=out, stderr=StringIO())
    line = out.getvalue().strip()
    # An ACL file line: the token's hash as password, never the token.
    assert line.startswith("user loopr-node-eu on #" + issued.key_hash) and token not in line
    assert "~probe.eu " in line and "%W~ingest" in line and "+publish" not in line
    settings.REDIS_URL = private_redis.url()
    call_command("broker_acl", "--apply", stdout=StringIO(), stderr=StringIO())
    assert node_client(private_redis, "eu", token).ping()
    # The ACL file line is one Redis itself accepts.
    acl_file = Path(private_redis.admin.config_get("dir")["dir"]) / "users.acl"
    acl_file.write_text("user default on nopass ~* &* +@all\n" + line + "\n")
    other = PrivateRedis(acl_file.parent / "second", extra=["--aclfile", str(acl_file)])
    try:
        assert node_client(other, "eu", token).ping()
    finally:
        other.stop()
