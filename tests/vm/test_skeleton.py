"""Walking skeleton: one static DECLARE_WORK item scheduled from debugfs, proven by the
kernel's four workqueue events in a private trace instance."""

from __future__ import annotations

import pytest

from wqlab.client import WqlabClient
from wqlab.lifecycle import WorkerKind, build_lifecycles
from wqlab.report import format_lifecycles
from wqlab.trace import parse
from wqlab.tracefs import TraceInstance

pytestmark = pytest.mark.vm


def test_schedule_work_passes_queue_activate_start_end_on_events(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    assert wqlab.cmd("schedule_work", id=0).ret == 1
    ptr = wqlab.work(0)["ptr"]
    text = wqlab_trace.wait_for(
        lambda t: ptr in t and "workqueue_execute_end: work struct " + ptr in t
    )
    lcs = [lc for lc in build_lifecycles(parse(text)) if lc.work == ptr]
    table = format_lifecycles(lcs)
    assert len(lcs) == 1, table
    lc = lcs[0]
    assert lc.queued_ns is not None and lc.activated_ns is not None, table
    assert lc.started_ns is not None and lc.ended_ns is not None, table
    assert lc.queued_ns <= lc.activated_ns <= lc.started_ns <= lc.ended_ns, table
    assert lc.workqueue == "events", table
    # read while the module is loaded: %ps names the module's function
    assert lc.function is not None and lc.function.module == "wqlab", table
    assert lc.function.name == wqlab.work(0)["fn"], table
    assert lc.worker_kind is WorkerKind.BOUND, table
