"""The system workqueues: where schedule_work*/queue_work* put items, what runs them,
and what re-queueing a pending or running item does."""

from __future__ import annotations

import errno

import pytest
from wqtest import (
    ExecuteEnd,
    QueueWork,
    new_items,
    observe,
    online_cpus,
    poll,
    wait_blocked,
    wait_runs,
)

from wqlab.client import WqlabClient
from wqlab.lifecycle import WorkerKind
from wqlab.tracefs import TraceInstance

pytestmark = pytest.mark.vm


def test_schedule_work_goes_to_events_with_unbound_req_cpu_on_bound_worker(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    unbound = int(wqlab.features()["work_cpu_unbound"])
    (item,) = new_items(wqlab, 1)
    assert wqlab.cmd("schedule_work", id=item).ret == 1
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    lc = obs.one(item)
    expected = f"workqueue=events req_cpu={unbound} bound kworker, queue→activate→start→end"
    assert lc.workqueue == "events", obs.explain(expected)
    assert lc.req_cpu == unbound, obs.explain(expected)
    assert lc.worker_kind is WorkerKind.BOUND, obs.explain(expected)
    assert lc.queue_cpu == lc.exec_cpu, obs.explain(expected + ", run on the pool's CPU")
    assert None not in (lc.queued_ns, lc.activated_ns, lc.started_ns, lc.ended_ns)
    assert lc.queued_ns <= lc.activated_ns <= lc.started_ns <= lc.ended_ns, obs.explain(expected)


def test_module_record_matches_trace_lifecycle(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    (item,) = new_items(wqlab, 1)
    wqlab.cmd("schedule_work", id=item)
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    lc = obs.one(item)
    rec = wqlab.work(item)
    expected = f"module record cpu={rec['cpu']} pid={rec['pid']} comm={rec['comm']} runs=1"
    assert rec["runs"] == "1", obs.explain(expected)
    assert int(rec["cpu"]) == lc.exec_cpu, obs.explain(expected)
    assert int(rec["pid"]) == lc.worker_pid, obs.explain(expected)
    assert rec["comm"] == lc.worker, obs.explain(expected)
    assert lc.item_id == item, obs.explain(expected + " and a wqlab_work_run mark")
    assert lc.function is not None and lc.function.name == rec["fn"], obs.explain(expected)


@pytest.mark.parametrize("command", ["schedule_work_on", "queue_work_on"])
def test_work_queued_on_a_cpu_runs_on_that_cpu_for_every_online_cpu(
    wqlab: WqlabClient, wqlab_trace: TraceInstance, command: str
) -> None:
    cpus = online_cpus(wqlab)
    items = new_items(wqlab, len(cpus))
    for cpu, item in zip(cpus, items, strict=True):
        extra = {"wq": "system"} if command == "queue_work_on" else {}
        assert wqlab.cmd(command, id=item, cpu=cpu, **extra).ret == 1
    obs = wait_runs(wqlab, wqlab_trace, {i: 1 for i in items})
    for cpu, item in zip(cpus, items, strict=True):
        lc = obs.one(item)
        expected = f"id={item} queued with req_cpu={cpu} runs on CPU {cpu} (bound worker)"
        assert lc.req_cpu == cpu and lc.queue_cpu == cpu, obs.explain(expected)
        assert lc.exec_cpu == cpu and lc.end_cpu == cpu, obs.explain(expected)
        assert lc.worker_kind is WorkerKind.BOUND, obs.explain(expected)
        assert lc.worker is not None and lc.worker.startswith(f"kworker/{cpu}:")
        assert lc.workqueue == "events", obs.explain(expected)


def test_queueing_a_pending_item_returns_false_and_adds_no_queue_event(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    # an ordered queue with a blocked item in front keeps the second one pending
    wqlab.cmd("alloc_ordered_workqueue", name="pend")
    blocker, item = new_items(wqlab, 2)
    wqlab.cmd("queue_work", wq="pend", id=blocker, block=1)
    wait_blocked(wqlab, wqlab_trace, [item], blocker)
    assert wqlab.cmd("queue_work", wq="pend", id=item).ret == 1
    assert wqlab.cmd("work_pending", id=item).ret == 1
    assert wqlab.cmd("queue_work", wq="pend", id=item).ret == 0
    # pending on "pend": another queue is refused (one queue at a time, docs/commands.md)
    wqlab.expect_errno(errno.EBUSY, "queue_work", wq="system", id=item)
    wqlab.expect_errno(errno.EBUSY, "schedule_work", id=item)
    wqlab.cmd("release", id=blocker)
    obs = wait_runs(wqlab, wqlab_trace, {blocker: 1, item: 1})
    expected = "one queue_work event and one run of the item queued 4 times (1 returned 0)"
    assert obs.count(QueueWork, item) == 1, obs.explain(expected)
    assert len(obs.ran(item)) == 1, obs.explain(expected)
    assert obs.one(item).workqueue == "wqlab_pend", obs.explain(expected)
    rets = [(ev.int_field("ret"), ev.int_field("err")) for ev in obs.cmd_events("queue_work", item)]
    want = [(1, 0), (0, 0), (0, -errno.EBUSY)]
    assert rets == want, obs.explain(f"queue_work (ret, err) {want}, got {rets}")


def test_running_item_queued_again_runs_again_afterwards_without_overlap(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    cpus = online_cpus(wqlab)
    (item,) = new_items(wqlab, 1)
    wqlab.cmd("queue_work_on", wq="system", cpu=cpus[0], id=item, block=1)
    wait_blocked(wqlab, wqlab_trace, [], item)
    busy = wqlab.cmd("work_busy", id=item)
    assert busy["busy"] == "running", busy
    # queued again while it runs (on another CPU if there is one): pending again
    assert wqlab.cmd("queue_work_on", wq="system", cpu=cpus[-1], id=item).ret == 1
    assert wqlab.cmd("work_busy", id=item)["busy"] == "pending,running"
    wqlab.cmd("release", id=item)
    obs = wait_runs(wqlab, wqlab_trace, {item: 2})
    lcs = obs.ran(item)
    expected = "two runs of the same item, the second starting after the first ended"
    assert len(lcs) == 2, obs.explain(expected)
    first, second = lcs
    assert obs.max_concurrency(item) == 1, obs.explain(expected)
    assert first.ended_ns is not None and second.started_ns is not None
    assert second.started_ns >= first.ended_ns, obs.explain(expected)
    assert second.queued_ns is not None and second.queued_ns < first.ended_ns, obs.explain(
        expected + " (queued while the first ran)"
    )


def test_work_busy_and_work_pending_follow_the_item(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    (item,) = new_items(wqlab, 1)
    assert wqlab.cmd("work_busy", id=item).ret == 0
    assert wqlab.cmd("work_pending", id=item).ret == 0
    wqlab.cmd("schedule_work", id=item, block=1)
    wait_blocked(wqlab, wqlab_trace, [], item)
    assert wqlab.cmd("work_busy", id=item).ret == 2  # WORK_BUSY_RUNNING
    assert wqlab.cmd("work_pending", id=item).ret == 0
    assert wqlab.work(item)["state"] == "blocked"
    wqlab.cmd("release", id=item)
    wait_runs(wqlab, wqlab_trace, {item: 1})
    # the worker leaves the kernel's busy hash after execute_end, past a cond_resched()
    poll("work_busy 0 after the run", lambda: wqlab.cmd("work_busy", id=item).ret == 0)
    assert wqlab.work(item)["state"] == "done"


@pytest.mark.parametrize(
    ("wq", "kname", "kinds"),
    [
        ("system", "events", {WorkerKind.BOUND}),
        ("system_highpri", "events_highpri", {WorkerKind.BOUND_HIGHPRI}),
        ("system_long", "events_long", {WorkerKind.BOUND}),
        ("system_unbound", "events_unbound", {WorkerKind.UNBOUND}),
    ],
)
def test_system_queue_runs_on_its_kind_of_worker(
    wqlab: WqlabClient, wqlab_trace: TraceInstance, wq: str, kname: str, kinds: set[WorkerKind]
) -> None:
    (item,) = new_items(wqlab, 1)
    assert wqlab.cmd("queue_work", wq=wq, id=item).ret == 1
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    lc = obs.one(item)
    expected = f"workqueue={kname}, worker kind in {sorted(k.value for k in kinds)}"
    assert lc.workqueue == kname, obs.explain(expected)
    assert lc.worker_kind in kinds, obs.explain(expected)
    assert (lc.queue_cpu == -1) == (wq == "system_unbound"), obs.explain(expected)


def test_flush_scheduled_work_waits_for_system_items(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    (item,) = new_items(wqlab, 1)
    wqlab.cmd("schedule_work", id=item, block=1)
    wait_blocked(wqlab, wqlab_trace, [], item)
    fut = wqlab.submit("flush_scheduled_work")
    from wqtest import still_running

    assert still_running(fut), "flush_scheduled_work returned while a system item was blocked"
    wqlab.cmd("release", id=item)
    wqlab.result(fut)
    obs = observe(wqlab, wqlab_trace, [item])
    end = obs.of(ExecuteEnd, item)[-1].ts_ns
    assert end <= obs.cmd_ns("flush_scheduled_work"), obs.explain(
        "execute_end before flush_scheduled_work returned"
    )
