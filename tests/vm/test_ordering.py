"""Ordered and single-thread queues: items run one at a time, in the order queued."""

from __future__ import annotations

import pytest
from wqtest import new_items, online_cpus, wait_runs

from wqlab.client import WqlabClient
from wqlab.lifecycle import is_fifo
from wqlab.tracefs import TraceInstance

pytestmark = pytest.mark.vm


@pytest.mark.parametrize("how", ["alloc_ordered_workqueue", "create_singlethread_workqueue"])
def test_ordered_queue_runs_fifo_and_never_overlaps(
    wqlab: WqlabClient, wqlab_trace: TraceInstance, how: str
) -> None:
    wqlab.cmd(how, name="ord")
    items = new_items(wqlab, 6)
    for n, item in enumerate(items):
        # mixed lengths: a later short item must still wait for an earlier long one
        wqlab.cmd("queue_work", wq="ord", id=item, sleep_ms=(30 if n % 2 == 0 else 1))
    obs = wait_runs(wqlab, wqlab_trace, {i: 1 for i in items})
    lcs = obs.ran(*items)
    expected = f"{how}: ids {items} start in queueing order, one at a time"
    assert [
        obs.by_ptr[lc.work] for lc in sorted(lcs, key=lambda lc: lc.started_ns or 0)
    ] == items, obs.explain(expected)
    assert is_fifo(lcs), obs.explain(expected)
    assert obs.max_concurrency(*items) == 1, obs.explain(expected)


def test_ordered_queue_keeps_fifo_for_items_queued_for_different_cpus(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    cpus = online_cpus(wqlab)
    wqlab.cmd("alloc_ordered_workqueue", name="ordc")
    items = new_items(wqlab, 6)
    for n, item in enumerate(items):
        wqlab.cmd("queue_work_on", wq="ordc", cpu=cpus[n % len(cpus)], id=item, sleep_ms=10)
    obs = wait_runs(wqlab, wqlab_trace, {i: 1 for i in items})
    expected = "queue_work_on an ordered queue: the CPU is only a hint, order is still FIFO"
    assert is_fifo(obs.ran(*items)), obs.explain(expected)
    assert obs.max_concurrency(*items) == 1, obs.explain(expected)


def test_ordered_queue_puts_a_self_requeue_behind_items_queued_meanwhile(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    wqlab.cmd("alloc_ordered_workqueue", name="ordr")
    a, b = new_items(wqlab, 2)
    wqlab.cmd("queue_work", wq="ordr", id=a, sleep_ms=20, requeue=2)
    wqlab.cmd("queue_work", wq="ordr", id=b, sleep_ms=5)
    obs = wait_runs(wqlab, wqlab_trace, {a: 3, b: 1})
    lcs = obs.ran(a, b)
    order = [obs.by_ptr[lc.work] for lc in sorted(lcs, key=lambda lc: lc.started_ns or 0)]
    expected = f"run order [{a}, {b}, {a}, {a}]: the requeue goes to the back of the queue"
    assert order == [a, b, a, a], obs.explain(expected)
    assert is_fifo(lcs) and obs.max_concurrency(a, b) == 1, obs.explain(expected)
