"""flush_work, cancel_work_sync, cancel_work, flush_workqueue, drain_workqueue,
destroy_workqueue: who waits for what, proven by the order of trace events against the
``wqlab_cmd`` event each command emits when it returns."""

from __future__ import annotations

import errno

import pytest
from wqtest import (
    ExecuteEnd,
    ExecuteStart,
    QueueWork,
    new_items,
    observe,
    still_running,
    wait_blocked,
    wait_runs,
)

from wqlab.client import WqlabClient
from wqlab.tracefs import TraceInstance

pytestmark = pytest.mark.vm


def test_flush_work_returns_only_after_execute_end(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    (item,) = new_items(wqlab, 1)
    wqlab.cmd("schedule_work", id=item, block=1)
    wait_blocked(wqlab, wqlab_trace, [], item)
    fut = wqlab.submit("flush_work", id=item)
    assert still_running(fut), "flush_work returned while the item was still blocked"
    wqlab.cmd("release", id=item)
    assert wqlab.result(fut).ret == 1  # it waited
    obs = observe(wqlab, wqlab_trace, [item])
    end = obs.of(ExecuteEnd, item)[-1].ts_ns
    assert end <= obs.cmd_ns("flush_work", item), obs.explain(
        "execute_end before flush_work returned"
    )


def test_flush_work_of_an_idle_item_returns_false_at_once(wqlab: WqlabClient) -> None:
    (item,) = new_items(wqlab, 1)
    assert wqlab.cmd("flush_work", id=item, timeout=10).ret == 0


def test_cancel_work_sync_waits_for_running_item_and_nothing_runs_after(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    item, sentinel = new_items(wqlab, 2)
    # a self-requeueing item: without the cancel it would run 6 times
    wqlab.cmd("schedule_work", id=item, block=1, requeue=5)
    wait_blocked(wqlab, wqlab_trace, [], item)
    fut = wqlab.submit("cancel_work_sync", id=item)
    assert still_running(fut), "cancel_work_sync returned while the item was running"
    wqlab.cmd("release", id=item)
    wqlab.result(fut)
    # something queued later has run: any requeue of the item would have run by then
    wqlab.cmd("schedule_work", id=sentinel, sleep_ms=50)
    obs = wait_runs(wqlab, wqlab_trace, {sentinel: 1}, extra=[item])
    t_ret = obs.cmd_ns("cancel_work_sync", item)
    expected = "the running item ended before cancel_work_sync returned; no start after it"
    assert all(ev.ts_ns <= t_ret for ev in obs.of(ExecuteEnd, item)), obs.explain(expected)
    assert not [ev for ev in obs.of(ExecuteStart, item) if ev.ts_ns > t_ret], obs.explain(expected)
    assert len(obs.ran(item)) == 1, obs.explain(expected)
    assert wqlab.cmd("work_busy", id=item).ret == 0


def test_cancel_work_sync_of_a_pending_item_returns_true_and_it_never_runs(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    wqlab.cmd("alloc_ordered_workqueue", name="cws")
    blocker, item = new_items(wqlab, 2)
    wqlab.cmd("queue_work", wq="cws", id=blocker, block=1)
    wait_blocked(wqlab, wqlab_trace, [item], blocker)
    wqlab.cmd("queue_work", wq="cws", id=item)
    assert wqlab.cmd("cancel_work_sync", id=item).ret == 1
    wqlab.cmd("release", id=blocker)
    fut = wqlab.submit("flush_workqueue", wq="cws")
    wqlab.result(fut)
    obs = observe(wqlab, wqlab_trace, [blocker, item])
    expected = "the cancelled item was queued once and never started"
    assert obs.count(QueueWork, item) == 1, obs.explain(expected)
    assert obs.ran(item) == [], obs.explain(expected)


def test_cancel_work_does_not_wait_for_a_running_item(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    if wqlab.features().get("cancel_work") != "1":
        pytest.skip("this kernel has no cancel_work()")
    (item,) = new_items(wqlab, 1)
    wqlab.cmd("schedule_work", id=item, block=1)
    wait_blocked(wqlab, wqlab_trace, [], item)
    # cancel_work is not a blocking command: it runs inline and must return now
    assert wqlab.cmd("cancel_work", id=item, timeout=10).ret == 0  # not pending
    assert wqlab.work(item)["state"] == "blocked"
    wqlab.cmd("release", id=item)
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    end = obs.of(ExecuteEnd, item)[-1].ts_ns
    assert end > obs.cmd_ns("cancel_work", item), obs.explain(
        "cancel_work returned before the running item ended"
    )


def test_cancel_work_removes_a_pending_item(wqlab: WqlabClient, wqlab_trace: TraceInstance) -> None:
    if wqlab.features().get("cancel_work") != "1":
        pytest.skip("this kernel has no cancel_work()")
    wqlab.cmd("alloc_ordered_workqueue", name="cw")
    blocker, item = new_items(wqlab, 2)
    wqlab.cmd("queue_work", wq="cw", id=blocker, block=1)
    wait_blocked(wqlab, wqlab_trace, [item], blocker)
    wqlab.cmd("queue_work", wq="cw", id=item)
    assert wqlab.cmd("cancel_work", id=item).ret == 1
    assert wqlab.cmd("work_pending", id=item).ret == 0
    wqlab.cmd("release", id=blocker)
    wqlab.result(wqlab.submit("flush_workqueue", wq="cw"))
    obs = observe(wqlab, wqlab_trace, [blocker, item])
    assert obs.ran(item) == [], obs.explain("the cancelled pending item never ran")


def test_flush_workqueue_waits_for_every_queued_item(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    wqlab.cmd("alloc_workqueue", name="fl")
    items = new_items(wqlab, 4)
    for i, item in enumerate(items):
        wqlab.cmd("queue_work", wq="fl", id=item, sleep_ms=20 + 20 * i)
    wqlab.result(wqlab.submit("flush_workqueue", wq="fl"))
    obs = observe(wqlab, wqlab_trace, items)
    t_ret = obs.cmd_ns("flush_workqueue")
    expected = "all 4 items ended before flush_workqueue returned"
    for item in items:
        ends = obs.of(ExecuteEnd, item)
        assert len(ends) == 1 and ends[0].ts_ns <= t_ret, obs.explain(expected)


def test_drain_workqueue_waits_for_self_requeueing_items_and_refuses_new_work(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    wqlab.cmd("alloc_workqueue", name="dr")
    gate, item, other = new_items(wqlab, 3)
    # the gate keeps the drain going; the item requeues itself 3 times (chained work)
    wqlab.cmd("queue_work", wq="dr", id=gate, block=1)
    wait_blocked(wqlab, wqlab_trace, [item, other], gate)
    wqlab.cmd("queue_work", wq="dr", id=item, sleep_ms=20, requeue=3)
    fut = wqlab.submit("drain_workqueue", wq="dr")
    assert still_running(fut), "drain_workqueue returned while an item was blocked"
    # while it drains, only the queue's own items may queue there
    wqlab.expect_errno(errno.EBUSY, "queue_work", wq="dr", id=other)
    wqlab.cmd("release", id=gate)
    wqlab.result(fut)
    obs = observe(wqlab, wqlab_trace, [gate, item, other])
    t_ret = obs.cmd_ns("drain_workqueue")
    expected = "the gate and all 4 runs (1 + 3 requeues) ended before drain_workqueue returned"
    ends = obs.of(ExecuteEnd, item) + obs.of(ExecuteEnd, gate)
    assert len(ends) == 5, obs.explain(expected)
    assert all(ev.ts_ns <= t_ret for ev in ends), obs.explain(expected)
    assert obs.lcs(other) == [], obs.explain("the refused item never queued")
    assert wqlab.cmd("queue_work", wq="dr", id=other).ret == 1  # queueing works again


def test_destroy_workqueue_drains_it_and_frees_the_name(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    wqlab.cmd("alloc_workqueue", name="des")
    items = new_items(wqlab, 3)
    for item in items:
        # (no requeue: the module stops requeueing onto a dying queue, see the report)
        wqlab.cmd("queue_work", wq="des", id=item, sleep_ms=30)
    wqlab.result(wqlab.submit("destroy_workqueue", wq="des"))
    obs = observe(wqlab, wqlab_trace, items)
    t_ret = obs.cmd_ns("destroy_workqueue")
    expected = "every item ended before destroy_workqueue returned"
    for item in items:
        ends = obs.of(ExecuteEnd, item)
        assert len(ends) == 1 and all(e.ts_ns <= t_ret for e in ends), obs.explain(expected)
    assert not [w for w in wqlab.workqueues() if w.get("name") == "des"]
    wqlab.expect_errno(errno.ENOENT, "queue_work", wq="des", id=items[0])
    wqlab.cmd("alloc_workqueue", name="des")  # the name is free again


def test_destroy_workqueue_with_a_blocked_item_is_refused(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    wqlab.cmd("alloc_workqueue", name="busy")
    (item,) = new_items(wqlab, 1)
    wqlab.cmd("queue_work", wq="busy", id=item, block=1)
    wait_blocked(wqlab, wqlab_trace, [], item)
    wqlab.expect_errno(errno.EBUSY, "destroy_workqueue", wq="busy")
    assert [w for w in wqlab.workqueues() if w.get("name") == "busy"]
    wqlab.cmd("release", id=item)
    wait_runs(wqlab, wqlab_trace, {item: 1})
