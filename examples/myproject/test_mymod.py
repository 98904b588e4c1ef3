"""mymod's work item, proven from the kernel's own workqueue trace events by the wqlab
plugin's fixtures: a VM booted on the first test that asks for one, a private trace
instance per test, artifacts under this project's artifacts/ when a test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wqlab.build import build_module
from wqlab.channel import AgentChannel
from wqlab.kernels import Kernel
from wqlab.lifecycle import Lifecycle, build_lifecycles
from wqlab.report import format_lifecycles
from wqlab.trace import parse
from wqlab.tracefs import TraceInstance
from wqlab.vm import Vm

HERE = Path(__file__).resolve().parent


@pytest.fixture
def mymod(wqlab_kernel: Kernel, wqlab_vm: Vm, wqlab_guest: AgentChannel) -> Iterator[str]:
    """mymod.ko built for the kernel under test, where the machine under test sees it
    (the VM: the same path; --wqlab-target ssh or serial: a copy); unloaded after."""
    ko = build_module(wqlab_kernel, src=HERE / "mymod", name="mymod", subdir=".")
    yield wqlab_vm.guest_path(ko)
    wqlab_guest.sh("rmmod mymod", check=False)


def mymod_lifecycles(guest: AgentChannel, trace: TraceInstance, ko: str) -> list[Lifecycle]:
    guest.succeed(f"insmod {ko}")
    # the item's execute_start and execute_end: two ": function mymod_fn" lines
    text = trace.wait_for(lambda t: t.count(": function mymod_fn") >= 2)
    return [lc for lc in build_lifecycles(parse(text)) if lc.function_name.startswith("mymod_fn")]


def test_work_item_runs_once_on_its_own_queue(
    mymod: str, wqlab_guest: AgentChannel, wqlab_trace: TraceInstance
) -> None:
    lcs = mymod_lifecycles(wqlab_guest, wqlab_trace, mymod)
    table = format_lifecycles(lcs)
    assert len(lcs) == 1, table
    (lc,) = lcs
    assert lc.workqueue == "mymod_wq", table
    assert lc.function is not None and lc.function.module == "mymod", table
    assert lc.complete and lc.started_ns is not None and lc.queued_ns is not None, table
    assert lc.queued_ns <= lc.started_ns <= (lc.ended_ns or 0), table
    assert lc.worker is not None and lc.worker.startswith("kworker/u"), table  # WQ_UNBOUND
