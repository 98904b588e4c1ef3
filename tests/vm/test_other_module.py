"""The wqlab pytest plugin testing a module that is not wqlab: tests/othermod/ queues
three items on its own ordered workqueue at load. This is the README's example."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wqlab.build import build_module
from wqlab.channel import AgentChannel
from wqlab.kernels import Kernel
from wqlab.lifecycle import build_lifecycles, is_fifo, max_concurrency
from wqlab.report import format_lifecycles
from wqlab.trace import parse
from wqlab.tracefs import TraceInstance

pytestmark = pytest.mark.vm
OTHER = Path(__file__).resolve().parent.parent / "othermod"


@pytest.fixture
def othermod(wqlab_kernel: Kernel, wqlab_guest: AgentChannel) -> Iterator[Path]:
    ko = build_module(wqlab_kernel, src=OTHER, name="othermod", subdir=".")
    yield ko
    wqlab_guest.sh("rmmod othermod", check=False)


def test_othermod_items_run_in_order_on_its_ordered_queue(
    othermod: Path, wqlab_guest: AgentChannel, wqlab_trace: TraceInstance
) -> None:
    wqlab_guest.succeed(f"insmod {othermod}")
    # execute_start and execute_end of three items: six ": function othermod_fn" lines
    text = wqlab_trace.wait_for(lambda t: t.count(": function othermod_fn") >= 6)
    lcs = [lc for lc in build_lifecycles(parse(text)) if lc.function_name.startswith("othermod_fn")]
    table = format_lifecycles(lcs)
    assert len(lcs) == 3, table
    assert all(lc.workqueue == "othermod_wq" for lc in lcs), table
    assert all(lc.function is not None and lc.function.module == "othermod" for lc in lcs), table
    assert max_concurrency(lcs) == 1, table
    assert is_fifo(lcs), table
