"""dev.py: the Procfile parser and the supervisor of `dev.py run`, on real processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import dev
from tests.support.processes import wait_for

ROOT = Path(__file__).resolve().parents[1]


def test_the_procfile_parser_reads_names_and_commands_in_order_and_skips_comments():
    text = "# the processes\nweb: gunicorn x --bind ${LOOPR_BIND:-127.0.0.1}:${PORT:-8000}\n\nprobe:  celery -A loopr worker\n"
    assert dev.read_procfile(text) == {
        "web": "gunicorn x --bind ${LOOPR_BIND:-127.0.0.1}:${PORT:-8000}",
        "probe": "celery -A loopr worker",
    }


def test_the_procfile_parser_names_the_line_it_cannot_read():
    with pytest.raises(ValueError, match="line 2"):
        dev.read_procfile("web: gunicorn\nthis is not an entry\n")


def test_the_real_procfile_lists_the_five_loopr_processes():
    assert list(dev.read_procfile(dev.PROCFILE.read_text())) == ["web", "beat", "dispatcher", "worker", "probe"]


def start_supervisor(tmp_path: Path, children: dict[str, str]) -> subprocess.Popen:
    """A Supervisor over `children` (name: shell command) in a process of its own."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import dev
        children = [dev.Child(name, ["/bin/sh", "-c", command]) for name, command in {children!r}.items()]
        sys.exit(dev.Supervisor(children, dict(__import__("os").environ)).run())
    """)
    return subprocess.Popen([sys.executable, "-c", script], stdout=open(tmp_path / "out.log", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def output(tmp_path: Path) -> str:
    return (tmp_path / "out.log").read_text(errors="replace")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_process_that_exits_is_logged_with_its_name_and_status_and_restarted_while_the_others_keep_running(
    tmp_path,
):
    proc = start_supervisor(tmp_path, {"steady": "echo steady up; exec sleep 60", "crashy": "sleep 0.2; exit 3"})
    try:
        wait_for(lambda: output(tmp_path).count("started crashy") >= 3, timeout=20, message="two restarts")
        log = output(tmp_path)
        assert re.search(r"crashy \(pid \d+\) exited unexpectedly with status 3; restarting it in 1 s", log)
        # The second failure in a row waits longer: backoff, not a spin.
        assert re.search(r"crashy \(pid \d+\) exited unexpectedly with status 3; restarting it in 2 s", log)
        # The other process was never touched.
        assert log.count("started steady") == 1 and "steady up" in log
        assert proc.poll() is None
    finally:
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)


def test_ctrl_c_stops_every_process_within_seconds_and_the_supervisor_exits_cleanly(tmp_path):
    proc = start_supervisor(tmp_path, {"one": "exec sleep 60", "two": "trap 'exit 0' TERM; sleep 60 & wait"})
    wait_for(lambda: output(tmp_path).count("| started") == 2, timeout=20, message="both started")
    pids = [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", output(tmp_path))]
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert time.monotonic() - started < 5
    assert not any(alive(pid) for pid in pids)
    log = output(tmp_path)
    assert "| stopped" in log and "exited unexpectedly" not in log and "killing" not in log


def test_a_killed_process_takes_its_own_children_with_it_before_it_is_restarted(tmp_path):
    # Like a celery worker's pool: the child forks a grandchild that would
    # otherwise outlive it and keep consuming its queue.
    proc = start_supervisor(tmp_path, {"pool": "sleep 300 & echo grandchild $!; exec sleep 300"})
    try:
        wait_for(lambda: "grandchild" in output(tmp_path), timeout=20, message="the grandchild")
        grandchild = int(re.search(r"grandchild (\d+)", output(tmp_path))[1])
        parent = int(re.search(r"started pool \(pid (\d+)\)", output(tmp_path))[1])
        os.kill(parent, signal.SIGKILL)
        wait_for(lambda: output(tmp_path).count("started pool") == 2, timeout=20, message="the restart")
        assert "exited unexpectedly with signal SIGKILL" in output(tmp_path)
        assert not alive(grandchild)
    finally:
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)


def test_the_processes_of_a_supervisor_that_is_itself_killed_do_not_outlive_it(tmp_path):
    proc = start_supervisor(tmp_path, {"one": "exec sleep 300"})
    wait_for(lambda: "started one" in output(tmp_path), timeout=20, message="the child")
    child = int(re.search(r"started one \(pid (\d+)\)", output(tmp_path))[1])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    wait_for(lambda: not alive(child), timeout=10, message="the orphan to go")


def test_the_embedded_broker_answers_on_its_socket_and_keeps_its_data_in_the_var_dir(tmp_path):
    var = tmp_path / "var"
    proc = subprocess.Popen(dev.embedded_broker_command(var), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        sock = dev.embedded_broker_socket(var)
        wait_for(lambda: dev.broker_answers(sock), timeout=20, message="the broker")
        import redis

        client = redis.Redis(unix_socket_path=str(sock))
        # Never evicts (a dropped message is a lost check) and logs its writes,
        # so a restart keeps what was queued.
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("port") == {"port": "0"}, "no TCP port"
        assert client.config_get("dir")["dir"] == str(sock.parent)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
