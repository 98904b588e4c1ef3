"""The order in which pytest-xdist's controller hands tests to its workers (``-n N``).

xdist's load scheduling sends each worker a block of consecutive tests (a quarter of its
share) and refills it as it goes, whatever the tests are. Under wqlab two kinds of test
make that costly: a ``whole_vm`` test's body has the host to itself (every other worker's
current test must end first, and no other test starts meanwhile: see
``wqlab.pytest_plugin``), and a ``slow`` test (a fuzz run, VMs of its own, a wheel
install) runs for minutes. A ``whole_vm`` test that waits for a slow test another worker
began idles every worker for that time. This scheduler:

- sends every ``whole_vm`` test to the first worker, first;
- sends the ``slow`` tests only once no ``whole_vm`` test is left, each to a worker that
  has no slow test queued, in the plan's order, so they run side by side;
- fills every worker with the other tests in their collected order meanwhile, keeping
  at most two queued per worker (xdist's worker runs a test once it knows the next).

A worker that runs out of other tests takes a slow (or whole_vm) one early rather than
idle: a worker with one test queued waits for a second before it runs it. The kinds
come from the plan the workers write at collection (:func:`write_plan`, a file in the
artifacts directory): the controller does not collect. Without a plan (a session that
does not use wqlab) it is xdist's own load scheduling.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

WHOLE_VM, SLOW, REST = "whole_vm", "slow", "rest"
QUEUED = 2  # tests queued per worker: the one it runs and the next


def plan_file(root: Path, run: str) -> Path:
    """The plan of the test run ``run`` (xdist's testrunuid, the same in every worker)."""
    return root / f".xdist-plan-{run}.json"


def write_plan(root: Path, run: str, kinds: dict[str, str]) -> None:
    """Every worker writes the same plan (nodeid -> kind); atomically, so the controller
    never reads half of one."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".xdist-plan-{run}.{os.getpid()}"
    tmp.write_text(json.dumps(kinds))
    tmp.replace(plan_file(root, run))


def take_plan(root: Path, run: str) -> dict[str, str]:
    """The run's plan, and the file gone; {} if no worker wrote one (wqlab not used)."""
    path = plan_file(root, run)
    try:
        plan = json.loads(path.read_text())
        path.unlink()
    except (OSError, ValueError):
        return {}
    return plan if isinstance(plan, dict) else {}


def phased_scheduling(config: Any, log: Any, root: Path) -> Any:
    """A :class:`xdist.scheduler.LoadScheduling` that sends tests by kind (module doc)."""
    from xdist.scheduler import LoadScheduling

    class PhasedScheduling(LoadScheduling):  # type: ignore[misc]
        kinds: list[str] = []
        plain = False  # no plan: xdist's own load scheduling

        def schedule(self) -> None:
            assert self.collection_is_completed
            if getattr(self, "collection", None) is not None:
                for node in self.nodes:
                    self.check_schedule(node)
                return
            plan = take_plan(root, self.nodes[0].workerinput["testrunuid"])
            if not plan:
                self.plain = True
                return super().schedule()  # type: ignore[no-any-return]
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return
            collection: list[str] = next(iter(self.node2collection.values()))
            self.collection = collection
            self.kinds = [plan.get(nodeid, REST) for nodeid in collection]
            self.pending[:] = range(len(collection))
            for node in self.nodes:
                self._fill(node)
            if not self.pending:
                for node in self.nodes:
                    node.shutdown()

        def check_schedule(self, node: Any, duration: float = 0) -> None:
            if self.plain:
                return super().check_schedule(node, duration)  # type: ignore[no-any-return]
            if node.shutting_down:
                return
            if self.pending:
                self._fill(node)
            else:
                node.shutdown()  # it runs what it has queued, then stops

        def _queued(self, kind: str, node: Any = None) -> bool:
            nodes = [node] if node is not None else list(self.node2pending)
            return any(self.kinds[i] == kind for n in nodes for i in self.node2pending[n])

        def _next(self, node: Any) -> int:
            by_kind: dict[str, int] = {}
            for i in self.pending:
                by_kind.setdefault(self.kinds[i], i)
                if len(by_kind) == 3:
                    break
            if node is self.nodes[0] and WHOLE_VM in by_kind:
                return by_kind[WHOLE_VM]
            whole_vm_left = WHOLE_VM in by_kind or self._queued(WHOLE_VM)
            if SLOW in by_kind and not whole_vm_left and not self._queued(SLOW, node):
                return by_kind[SLOW]
            if REST in by_kind:
                return by_kind[REST]
            # nothing else: a slow or whole_vm test rather than idle (a worker with one
            # test queued waits for a second before it runs it: never leave it so)
            first: int = self.pending[0]
            return by_kind.get(SLOW, by_kind.get(WHOLE_VM, first))

        def _fill(self, node: Any) -> None:
            while self.pending and len(self.node2pending[node]) < QUEUED:
                i = self._next(node)
                self.pending.remove(i)
                self.node2pending[node].append(i)
                node.send_runtest_some([i])
            if not self.pending and len(self.node2pending[node]) < QUEUED:
                # the last test, alone: it runs only once the worker is told to stop (a
                # worker that replaced a crashed one, given what the crash left)
                node.shutdown()

    return PhasedScheduling(config, log)
