"""Custom workqueues: max_active, WQ_UNBOUND, WQ_HIGHPRI, WQ_CPU_INTENSIVE, and what
create_workqueue / create_singlethread_workqueue / alloc_ordered_workqueue make."""

from __future__ import annotations

import pytest
from wqtest import (
    PREEMPT_FULL_CMDLINE,
    hog_detection_off,
    median,
    ms,
    new_items,
    online_cpus,
    preempt_full,
    spin_for,
    wait_blocked,
    wait_runs,
)

from wqlab.client import WqlabClient
from wqlab.kernels import Kernel
from wqlab.lifecycle import WorkerKind
from wqlab.tracefs import TraceInstance

pytestmark = pytest.mark.vm


def _wq(c: WqlabClient, name: str) -> dict[str, str]:
    for w in c.workqueues():
        if w.get("name") == name:
            return w
    raise AssertionError(f"no workqueue {name} in {c.workqueues()}")


@pytest.mark.parametrize("max_active", [1, 2, 3])
def test_max_active_caps_concurrency_and_activates_the_rest_later(
    wqlab: WqlabClient, wqlab_trace: TraceInstance, wqlab_kernel: Kernel, max_active: int
) -> None:
    cpu = online_cpus(wqlab)[0]
    wqlab.cmd("alloc_workqueue", name="ma", max_active=max_active)
    items = new_items(wqlab, max_active + 3)
    # the first max_active block until released: all items are queued while they still
    # run, however slowly the host sends the commands (with sleep_ms alone, a loaded host
    # queued the second item after the first had ended)
    for n, item in enumerate(items):
        how = {"block": 1} if n < max_active else {"sleep_ms": 40}
        assert wqlab.cmd("queue_work_on", wq="ma", cpu=cpu, id=item, **how).ret == 1
    for item in items[:max_active]:
        wqlab.cmd("release", id=item)
    obs = wait_runs(wqlab, wqlab_trace, {i: 1 for i in items})
    expected = (
        f"max_active={max_active}: exactly {max_active} executing at once (blocked, then "
        "sleeping); "
        f"the last 3 activated later than queued, after an earlier item ended"
    )
    assert obs.max_concurrency(*items) == max_active, obs.explain(expected)
    ends = sorted(lc.ended_ns for lc in obs.ran(*items) if lc.ended_ns is not None)
    for item in items[max_active:]:
        lc = obs.one(item)
        assert lc.activated_ns is not None and lc.queued_ns is not None, obs.explain(expected)
        assert lc.activated_ns > lc.queued_ns, obs.explain(expected)
        assert lc.activated_ns >= ends[0], obs.explain(expected)
    for item in items[:max_active]:  # the first ones are active at once
        lc = obs.one(item)
        assert lc.activated_ns is not None and lc.queued_ns is not None
        # not held back: active before any item ended (what releases a held-back one)
        assert lc.activated_ns < ends[0], obs.explain(expected)
        if not wqlab_kernel.debug:  # and at once: __queue_work() emits both events;
            # under KASAN + lockdep + TCG a tick or an interrupt between them costs more
            assert lc.activated_ns - lc.queued_ns < 5_000_000, obs.explain(expected)


def test_workqueue_set_max_active_releases_held_back_items(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    cpu = online_cpus(wqlab)[0]
    wqlab.cmd("alloc_workqueue", name="sma", max_active=1)
    items = new_items(wqlab, 3)
    for item in items:
        wqlab.cmd("queue_work_on", wq="sma", cpu=cpu, id=item, block=1)
    wait_blocked(wqlab, wqlab_trace, items, items[0])
    wqlab.cmd("workqueue_set_max_active", wq="sma", max_active=3)
    for item in items[1:]:
        wait_blocked(wqlab, wqlab_trace, items, item)  # they run while the first still blocks
    for item in items:
        wqlab.cmd("release", id=item)
    obs = wait_runs(wqlab, wqlab_trace, {i: 1 for i in items})
    assert obs.max_concurrency(*items) == 3, obs.explain("3 executing at once after raising")


def test_unbound_queue_runs_on_unbound_workers_queued_with_cpu_minus_one(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    wqlab.cmd("alloc_workqueue", name="unb", flags="unbound")
    items = new_items(wqlab, 3)
    for item in items:
        wqlab.cmd("queue_work", wq="unb", id=item, sleep_ms=5)
    obs = wait_runs(wqlab, wqlab_trace, {i: 1 for i in items})
    for item in items:
        lc = obs.one(item)
        expected = "workqueue=wqlab_unb, queue cpu=-1, kworker/uN:M"
        assert lc.workqueue == "wqlab_unb" and lc.queue_cpu == -1, obs.explain(expected)
        assert lc.worker_kind is WorkerKind.UNBOUND, obs.explain(expected)


def test_highpri_queue_runs_on_highpri_workers(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    wqlab.cmd("alloc_workqueue", name="hp", flags="highpri")
    cpus = online_cpus(wqlab)
    items = new_items(wqlab, len(cpus))
    for cpu, item in zip(cpus, items, strict=True):
        wqlab.cmd("queue_work_on", wq="hp", cpu=cpu, id=item)
    obs = wait_runs(wqlab, wqlab_trace, {i: 1 for i in items})
    for cpu, item in zip(cpus, items, strict=True):
        lc = obs.one(item)
        expected = f"kworker/{cpu}:NH (bound highpri) on CPU {cpu}"
        assert lc.worker_kind is WorkerKind.BOUND_HIGHPRI, obs.explain(expected)
        assert lc.exec_cpu == cpu and lc.worker is not None, obs.explain(expected)
        assert lc.worker.startswith(f"kworker/{cpu}:") and lc.worker.endswith("H")


@pytest.mark.xdist_group("whole_vm")  # a CPU hog or timing-sensitive: the host to itself
@PREEMPT_FULL_CMDLINE  # see preempt_full
def test_highpri_item_starts_sooner_than_normal_behind_a_cpu_hog(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    """A spinning item hogs the normal pool of a CPU; a normal item queued behind it
    waits for it, a highpri item (its own pool, nice -20 worker) preempts it. On 6.5+ the
    pool would mark the hog CPU-intensive after 10 ms and start the normal item too
    (test_versions covers that): the threshold is raised for this test."""
    cpu = online_cpus(wqlab)[-1]
    wqlab.cmd("alloc_workqueue", name="hpri", flags="highpri")
    wqlab.cmd("alloc_workqueue", name="norm")
    hog_us = spin_for(wqlab, wqlab_trace, cpu, ms_wanted=60)
    hog, normal, high = new_items(wqlab, 3)
    lat_normal: list[int] = []
    lat_high: list[int] = []
    runs = 5
    with preempt_full(wqlab), hog_detection_off(wqlab):
        for n in range(1, runs + 1):
            wqlab.cmd("queue_work_on", wq="norm", cpu=cpu, id=hog, spin_us=hog_us)
            wqlab.cmd("queue_work_on", wq="norm", cpu=cpu, id=normal)
            wqlab.cmd("queue_work_on", wq="hpri", cpu=cpu, id=high)
            obs = wait_runs(wqlab, wqlab_trace, {hog: n, normal: n, high: n})
            ln, lh = obs.ran(normal)[-1], obs.ran(high)[-1]
            assert ln.queue_latency_ns is not None and lh.queue_latency_ns is not None
            lat_normal.append(ln.queue_latency_ns)
            lat_high.append(lh.queue_latency_ns)
    mn, mh = median(lat_normal), median(lat_high)
    expected = (
        f"median queue→start: highpri ({ms(mh)}) < half of normal ({ms(mn)}) behind a "
        f"60 ms hog; highpri {[ms(x) for x in lat_high]}, "
        f"normal {[ms(x) for x in lat_normal]}"
    )
    assert mh < mn / 2, obs.explain(expected)
    assert all(lc.worker_kind is WorkerKind.BOUND_HIGHPRI for lc in obs.ran(high)), obs.explain(
        "highpri items on kworker/N:MH"
    )


@pytest.mark.xdist_group("whole_vm")  # a CPU hog or timing-sensitive: the host to itself
@PREEMPT_FULL_CMDLINE  # see preempt_full
def test_cpu_intensive_item_does_not_hold_back_others_in_its_pool(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    """workqueue.rst's w0/w1/w2 example: w0 burns CPU on a WQ_CPU_INTENSIVE queue; w1
    and w2, queued behind it on the same CPU (same pool), start without waiting for it:
    the pool does not count w0 as running and wakes another worker."""
    cpu = online_cpus(wqlab)[-1]
    wqlab.cmd("alloc_workqueue", name="ci", flags="cpu_intensive")
    wqlab.cmd("alloc_workqueue", name="plain")
    w0_us = spin_for(wqlab, wqlab_trace, cpu, ms_wanted=300)
    w0, w1, w2 = new_items(wqlab, 3)
    with preempt_full(wqlab):
        wqlab.cmd("queue_work_on", wq="ci", cpu=cpu, id=w0, spin_us=w0_us)
        wqlab.cmd("queue_work_on", wq="plain", cpu=cpu, id=w1, spin_us=max(1, w0_us // 60))
        wqlab.cmd("queue_work_on", wq="plain", cpu=cpu, id=w2, spin_us=max(1, w0_us // 60))
        obs = wait_runs(wqlab, wqlab_trace, {w0: 1, w1: 1, w2: 1})
    l0 = obs.one(w0)
    expected = "w1 and w2 start (and end) while the cpu_intensive w0 still runs"
    for item in (w1, w2):
        lc = obs.one(item)
        assert lc.exec_cpu == cpu, obs.explain(expected)
        assert lc.started_ns is not None and l0.ended_ns is not None
        assert lc.started_ns < l0.ended_ns, obs.explain(expected)
        assert lc.ended_ns is not None and lc.ended_ns < l0.ended_ns, obs.explain(expected)


@pytest.mark.parametrize("how", ["create_singlethread_workqueue", "alloc_ordered_workqueue"])
def test_single_thread_and_ordered_queues_are_unbound_ordered_and_listed_so(
    wqlab: WqlabClient, wqlab_trace: TraceInstance, how: str
) -> None:
    wqlab.cmd(how, name="one")
    w = _wq(wqlab, "one")
    assert w["ordered"] == "1", w
    (item,) = new_items(wqlab, 1)
    wqlab.cmd("queue_work", wq="one", id=item)
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    lc = obs.one(item)
    expected = "an ordered queue: unbound pool (cpu=-1), unbound worker"
    assert lc.workqueue == "wqlab_one" and lc.queue_cpu == -1, obs.explain(expected)
    assert lc.worker_kind is WorkerKind.UNBOUND, obs.explain(expected)


def test_create_workqueue_is_per_cpu_with_one_active_item_per_cpu(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    """create_workqueue() = WQ_MEM_RECLAIM, max_active 1: per-CPU bound pools, one item at
    a time on each CPU, but CPUs run in parallel."""
    cpus = online_cpus(wqlab)
    wqlab.cmd("create_workqueue", name="legacy")
    assert _wq(wqlab, "legacy")["ordered"] == "0"
    per_cpu: dict[int, list[int]] = {}
    for cpu in cpus:
        per_cpu[cpu] = new_items(wqlab, 2)
        first, second = per_cpu[cpu]
        wqlab.cmd("queue_work_on", wq="legacy", cpu=cpu, id=first, block=1)
        wqlab.cmd("queue_work_on", wq="legacy", cpu=cpu, id=second, sleep_ms=20)
    every = [i for ids in per_cpu.values() for i in ids]
    for ids in per_cpu.values():  # every CPU's first item blocks at once: no wait on time
        wait_blocked(wqlab, wqlab_trace, every, ids[0])
    for ids in per_cpu.values():
        wqlab.cmd("release", id=ids[0])
    obs = wait_runs(wqlab, wqlab_trace, {i: 1 for i in every})
    for cpu, ids in per_cpu.items():
        expected = f"CPU {cpu}: bound worker, one at a time (max_active 1 per CPU)"
        assert obs.max_concurrency(*ids) == 1, obs.explain(expected)
        for item in ids:
            lc = obs.one(item)
            assert lc.exec_cpu == cpu and lc.queue_cpu == cpu, obs.explain(expected)
            assert lc.worker_kind is WorkerKind.BOUND, obs.explain(expected)
    if len(cpus) > 1:
        assert obs.max_concurrency(*every) >= 2, obs.explain("different CPUs run in parallel")
