"""How `dev.py test` shares the suite among its pytest-xdist workers."""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling

# Suites that build fleets of nodes, kill services and run the quick start
# for minutes: run one after another on one worker, and first, as the longest
# chain of the run. Side by side they would starve each other's timing on a
# two-core machine (and two fleets would share the namespaces' lock anyway).
SERIAL = ("tests/fault/", "tests/fleet/", "tests/soak/")


class SuiteScheduling(LoadScopeScheduling):
    """xdist's `loadscope` (a module's tests on one worker, so its fixtures
    are built once), with the serial suites as one scope, handed out first."""

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(SERIAL):
            return "serial"
        return super()._split_scope(nodeid)

    def schedule(self) -> None:
        if self.collection is None and self.collection_is_completed:
            # Scopes are handed out in the order their first test was
            # collected; every worker's collection is reordered alike (the
            # scheduler checks that they agree), the rest keeps its order.
            for node, collection in self.registered_collections.items():
                self.registered_collections[node] = sorted(
                    collection, key=lambda nodeid: self._split_scope(nodeid) != "serial")
            self.config.option.loadscopereorder = False
        super().schedule()
