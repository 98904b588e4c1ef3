"""Behaviours that depend on the kernel version, from one expectation table.

| behaviour                                   | up to        | from   |
| ------------------------------------------- | ------------ | ------ |
| unbound max_active=1 is implicitly ordered  | 6.8          |        |
| WQ_BH, system_bh_wq                         |              | 6.9    |
| disable_work / enable_work                  |              | 6.10   |
| a CPU hog in a per-CPU pool is detected and | (holds back) | 6.5    |
| no longer holds back the pool               |              |        |
| flush_scheduled_work() without a warning    | 6.1 (below   |        |
|                                             | 6.3)         |        |
"""

from __future__ import annotations

import errno

import pytest
from wqtest import (
    PREEMPT_FULL_CMDLINE,
    kernel_version,
    new_items,
    online_cpus,
    preempt_full,
    spin_for,
    wait_blocked,
    wait_runs,
)

from wqlab.client import WqlabClient, WqlabCommandError
from wqlab.lifecycle import WorkerKind, is_fifo
from wqlab.tracefs import TraceInstance

pytestmark = pytest.mark.vm

# features entry -> (first version with it, or None) / (last version with it)
FROM: dict[str, tuple[int, int]] = {
    "wq_bh": (6, 9),
    "disable_work": (6, 10),
    "enable_and_queue_work": (6, 10),
    "cancel_work": (5, 19),
}
UP_TO: dict[str, tuple[int, int]] = {
    "unbound_max_active_1_ordered": (6, 8),
}


@pytest.mark.parametrize("name", sorted([*FROM, *UP_TO]))
def test_features_entry_matches_the_kernel_version(wqlab: WqlabClient, name: str) -> None:
    feats = wqlab.features()
    ver = kernel_version(wqlab)
    want = ver >= FROM[name] if name in FROM else ver <= UP_TO[name]
    assert feats[name] == ("1" if want else "0"), f"{name} on {feats['kernel']}: {feats}"


def test_features_report_hz_unbound_cpu_and_this_kernel(wqlab: WqlabClient) -> None:
    feats = wqlab.features()
    assert feats["kernel"] == wqlab.agent.succeed("uname -r").strip()
    assert int(feats["hz"]) in (100, 250, 300, 1000)
    assert int(feats["work_cpu_unbound"]) >= int(feats["nr_cpu_ids"])
    assert int(feats["nr_cpu_ids"]) >= len(online_cpus(wqlab))


@pytest.mark.parametrize(
    ("feature", "command", "args"),
    [
        ("disable_work", "disable_work", {}),
        ("disable_work", "enable_work", {}),
        ("disable_work", "disable_work_sync", {}),
        ("enable_and_queue_work", "enable_and_queue_work", {"wq": "system"}),
        ("cancel_work", "cancel_work", {}),
    ],
)
def test_version_gated_api_is_eopnotsupp_exactly_where_absent(
    wqlab: WqlabClient, feature: str, command: str, args: dict[str, str]
) -> None:
    (item,) = new_items(wqlab, 1)
    present = wqlab.features()[feature] == "1"
    if present:
        # keep the disable count balanced: enable_work() of an enabled item WARNs
        if command.startswith("enable"):
            wqlab.cmd("disable_work", id=item)
        r = wqlab.cmd(command, id=item, **args)
        assert r.ret >= 0
        if command.startswith("disable"):
            wqlab.cmd("enable_work", id=item)
    else:
        wqlab.expect_errno(errno.EOPNOTSUPP, command, id=item, **args)


def test_bh_flag_is_eopnotsupp_exactly_where_absent(wqlab: WqlabClient) -> None:
    if wqlab.features()["wq_bh"] == "1":
        wqlab.cmd("alloc_workqueue", name="bhq", flags="bh")
    else:
        wqlab.expect_errno(errno.EOPNOTSUPP, "alloc_workqueue", name="bhq", flags="bh")
        wqlab.expect_errno(errno.ENOENT, "queue_work", wq="system_bh", id=0)


def test_unbound_max_active_1_is_ordered_up_to_6_8(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    ordered = wqlab.features()["unbound_max_active_1_ordered"] == "1"
    wqlab.cmd("alloc_workqueue", name="um1", flags="unbound", max_active=1)
    items = new_items(wqlab, 6)
    cpus = online_cpus(wqlab)
    for n, item in enumerate(items):
        wqlab.cmd("queue_work_on", wq="um1", cpu=cpus[n % len(cpus)], id=item, sleep_ms=10)
    obs = wait_runs(wqlab, wqlab_trace, {i: 1 for i in items})
    for item in items:
        assert obs.one(item).worker_kind is WorkerKind.UNBOUND, obs.explain("unbound workers")
    if ordered:
        expected = "≤ 6.8: unbound max_active=1 is implicitly ordered: FIFO, one at a time"
        assert is_fifo(obs.ran(*items)), obs.explain(expected)
        assert obs.max_concurrency(*items) == 1, obs.explain(expected)
    # ≥ 6.9: no ordering promise; that every item ran is all there is to check


@pytest.mark.wqlab_feature("wq_bh")
@pytest.mark.parametrize("wq", ["bhq", "system_bh", "system_bh_highpri"])
def test_bh_work_runs_in_softirq_context(
    wqlab: WqlabClient, wqlab_trace: TraceInstance, wq: str
) -> None:
    if wq == "bhq":
        wqlab.cmd("alloc_workqueue", name="bhq", flags="bh")
    (item,) = new_items(wqlab, 1)
    assert wqlab.cmd("queue_work", wq=wq, id=item, spin_us=100).ret == 1
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    lc = obs.one(item)
    assert lc.worker_kind is WorkerKind.BH, obs.explain("executed in softirq (BH) context")


@pytest.mark.wqlab_feature("wq_bh")
def test_bh_queue_refuses_sleeping_behaviour(wqlab: WqlabClient) -> None:
    wqlab.cmd("alloc_workqueue", name="bhs", flags="bh")
    (item,) = new_items(wqlab, 1)
    wqlab.expect_errno(errno.EINVAL, "queue_work", wq="bhs", id=item, sleep_ms=1)
    wqlab.expect_errno(errno.EINVAL, "queue_work", wq="bhs", id=item, block=1)


@pytest.mark.wqlab_feature("disable_work")
def test_disabled_work_cannot_be_queued_until_enabled(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    (item,) = new_items(wqlab, 1)
    assert wqlab.cmd("disable_work", id=item).ret == 0  # was not pending
    assert wqlab.cmd("queue_work", wq="system", id=item).ret == 0
    assert wqlab.cmd("enable_work", id=item).ret == 1  # disable count back to 0
    assert wqlab.cmd("queue_work", wq="system", id=item).ret == 1
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    assert len(obs.lcs(item)) == 1, obs.explain("one queueing: the one after enable_work")


@pytest.mark.wqlab_feature("disable_work")
def test_disable_work_sync_waits_for_the_running_item(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    from wqtest import ExecuteEnd, observe, still_running

    (item,) = new_items(wqlab, 1)
    wqlab.cmd("schedule_work", id=item, block=1, requeue=3)
    wait_blocked(wqlab, wqlab_trace, [], item)
    fut = wqlab.submit("disable_work_sync", id=item)
    assert still_running(fut), "disable_work_sync returned while the item ran"
    wqlab.cmd("release", id=item)
    wqlab.result(fut)
    assert wqlab.cmd("queue_work", wq="system", id=item).ret == 0  # still disabled
    obs = observe(wqlab, wqlab_trace, [item])
    ends = obs.of(ExecuteEnd, item)
    assert len(ends) == 1 and ends[0].ts_ns <= obs.cmd_ns("disable_work_sync", item), obs.explain(
        "the running item ended before disable_work_sync returned; no requeue"
    )
    wqlab.cmd("enable_work", id=item)


@pytest.mark.wqlab_feature("enable_and_queue_work")
def test_enable_and_queue_work_queues_a_disabled_item(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    (item,) = new_items(wqlab, 1)
    wqlab.cmd("disable_work", id=item)
    assert wqlab.cmd("enable_and_queue_work", wq="system", id=item).ret == 1
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    assert obs.one(item).workqueue == "events", obs.explain("queued on events and ran")


@pytest.mark.xdist_group("whole_vm")  # a CPU hog or timing-sensitive: the host to itself
@PREEMPT_FULL_CMDLINE  # see preempt_full
def test_cpu_hog_in_a_per_cpu_pool_holds_back_others_only_before_6_5(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    """≤ 6.4: a busy-waiting item keeps its per-CPU pool's concurrency at 1, so an item
    queued behind it waits for its end. 6.5 (wq_cpu_intensive_thresh_us, 10 ms) marks it
    CPU-intensive at a tick and lets the pool start the next item."""
    auto = kernel_version(wqlab) >= (6, 5)
    cpu = online_cpus(wqlab)[-1]
    wqlab.cmd("alloc_workqueue", name="hog")
    # ≥ 6.5 needs a hog well past the 10 ms threshold; before, any hog shows it
    hog_us = spin_for(wqlab, wqlab_trace, cpu, ms_wanted=300)
    hog, other = new_items(wqlab, 2)
    with preempt_full(wqlab):  # so that a second worker could run at all
        wqlab.cmd("queue_work_on", wq="hog", cpu=cpu, id=hog, spin_us=hog_us)
        wqlab.cmd("queue_work_on", wq="hog", cpu=cpu, id=other)
        obs = wait_runs(wqlab, wqlab_trace, {hog: 1, other: 1})
    lh, lo = obs.one(hog), obs.one(other)
    assert lh.ended_ns is not None and lo.started_ns is not None
    if auto:
        assert lo.started_ns < lh.ended_ns, obs.explain(
            "≥ 6.5: the other item starts while the hog still spins (auto cpu_intensive)"
        )
    else:
        assert lo.started_ns >= lh.ended_ns, obs.explain(
            "≤ 6.4: the other item waits until the hog ends"
        )


def test_flush_scheduled_work_implementation_matches_the_kernel(wqlab: WqlabClient) -> None:
    feats = wqlab.features()
    real = feats["flush_scheduled_work"] == "1"
    assert feats["flush_scheduled_work_impl"] == ("system_wq" if real else "wqlab_items")
    assert real == (kernel_version(wqlab) < (6, 3)), feats
    assert wqlab.cmd("flush_scheduled_work").ret == 0


def test_unknown_system_queue_is_enoent(wqlab: WqlabClient) -> None:
    present = set(wqlab.features()["system_queues"].split(","))
    for wq in ("system_bh", "system_bh_highpri", "system_percpu", "system_dfl"):
        if wq not in present:
            wqlab.expect_errno(errno.ENOENT, "queue_work", wq=wq, id=0)
    for wq in ("system", "system_highpri", "system_long", "system_unbound"):
        assert wq in present
    try:
        wqlab.cmd("queue_work", wq="system_nope", id=0)
    except WqlabCommandError as e:
        assert e.errno == errno.ENOENT
    else:
        raise AssertionError("system_nope accepted")
