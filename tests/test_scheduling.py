"""The way `dev.py test` shares the suite among pytest-xdist workers
(tests/support/scheduling.py), driven with stand-in workers."""

from __future__ import annotations

from types import SimpleNamespace

from tests.support.scheduling import SuiteScheduling

# As a worker collects them: pytest-django's order, not the scheduler's.
COLLECTED = [
    "tests/test_api_schemathesis.py::test_fuzz",
    "tests/fault/test_faults.py::test_kill[beat]",
    "tests/fault/test_faults.py::test_kill[worker]",
    "tests/monitors/test_api.py::test_a",
    "tests/monitors/test_api.py::test_b",
    "tests/fleet/test_fleet.py::test_vote",
    "tests/soak/test_quick_start.py::test_soak",
    "tests/soak/test_quick_start.py::test_kill",
    "tests/teams/test_roles.py::test_c",
    "tests/workers/test_dispatch.py::test_d",
]


class Worker:
    def __init__(self, name: str):
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[int] = []

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent.extend(indexes)

    def shutdown(self) -> None:
        self.shutting_down = True


def run(workers: int) -> list[list[str]]:
    """Schedule COLLECTED on stand-in workers that run their tests one at a
    time, in turn; what each worker ran, in order, read in its own
    collection (the index the controller sent it)."""
    config = SimpleNamespace(getvalue=lambda name: [f"{workers}*popen"] if name == "tx" else None,
                             option=SimpleNamespace(loadscopereorder=True))
    scheduler = SuiteScheduling(config, log=None)
    scheduler.log = lambda *args: None
    nodes = [Worker(f"gw{i}") for i in range(workers)]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, list(COLLECTED))
    scheduler.schedule()
    ran: dict[Worker, list[str]] = {node: [] for node in nodes}
    while any(len(ran[node]) < len(node.sent) for node in nodes):
        for node in nodes:
            if len(ran[node]) < len(node.sent):
                index = node.sent[len(ran[node])]
                ran[node].append(COLLECTED[index])
                scheduler.mark_test_complete(node, index)
    return [ran[node] for node in nodes]


def test_the_soak_fleet_and_fault_suites_go_to_one_worker_first_soak_first_in_its_own_collections_order():
    first, second = run(2)
    serial = [nodeid for nodeid in COLLECTED if nodeid.startswith(("tests/soak/", "tests/fleet/", "tests/fault/"))]
    assert first[:len(serial)] == [
        "tests/soak/test_quick_start.py::test_soak",
        "tests/soak/test_quick_start.py::test_kill",
        "tests/fleet/test_fleet.py::test_vote",
        "tests/fault/test_faults.py::test_kill[beat]",
        "tests/fault/test_faults.py::test_kill[worker]",
    ]
    assert not [nodeid for nodeid in second if nodeid in serial]


def test_every_test_runs_once_and_the_schema_fuzzing_is_the_last_module_handed_out():
    for workers in (2, 3):
        ran = run(workers)
        everything = [nodeid for worker in ran for nodeid in worker]
        assert sorted(everything) == sorted(COLLECTED)
        fuzzing = next(worker for worker in ran if "tests/test_api_schemathesis.py::test_fuzz" in worker)
        assert fuzzing[-1] == "tests/test_api_schemathesis.py::test_fuzz"
