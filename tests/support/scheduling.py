"""How `dev.py test` shares the suite among its pytest-xdist workers."""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

# Suites that build fleets of nodes, kill services and run the quick start
# for minutes: run one after another on one worker, and first, as the longest
# chain of the run. Side by side they would starve each other's timing on a
# two-core machine (and two fleets would share the namespaces' lock anyway).
# In this order: the soak first, its 200 checks a second being the run's
# biggest CPU load, while the other worker is on the short database tests.
SERIAL = ("tests/soak/", "tests/fleet/", "tests/fault/")
# CPU-bound for minutes (a client and a web process at full speed): handed
# out last, when the soak is over.
LAST = ("tests/test_api_schemathesis.py",)


def order(nodeid: str) -> tuple[int, int]:
    for index, prefix in enumerate(SERIAL):
        if nodeid.startswith(prefix):
            return (0, index)
    return (2, 0) if nodeid.startswith(LAST) else (1, 0)


class SuiteScheduling(LoadScopeScheduling):
    """xdist's `loadscope` (a module's tests on one worker, so its fixtures
    are built once), with the serial suites as one scope, handed out first,
    and the CPU-heavy schema fuzzing last.

    Only the order of the work queue changes: the workers' collections stay
    as they collected them, since the controller names a test to a worker by
    its index in the worker's own collection."""

    _ordered = False

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(SERIAL):
            return "serial"
        return super()._split_scope(nodeid)

    def _assign_work_unit(self, node) -> None:
        if not self._ordered:
            # The queue is full once, before the first unit goes out. A
            # worker runs a unit's tests in the order they are sent.
            units = sorted(self.workqueue.items(), key=lambda unit: order(next(iter(unit[1]))))
            self.workqueue.clear()
            for scope, nodeids in units:
                self.workqueue[scope] = dict(sorted(nodeids.items(), key=lambda item: order(item[0])))
            self._ordered = True
        super()._assign_work_unit(node)
