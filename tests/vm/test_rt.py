"""What PREEMPT_RT changes for workqueues, and what it does not.

Run on every line; each test states both sides, keyed on the module's ``features``
``preempt_rt`` (``CONFIG_PREEMPT_RT``). ``make test-vm KERNEL=rt`` boots Debian's
``-rt-amd64`` flavour (``make kernel KERNEL=rt`` installs it).

| behaviour                                             | PREEMPT_RT          | not RT          |
| ----------------------------------------------------- | ------------------- | --------------- |
| a delayed item's timer queues it from                 | ``ktimers/<cpu>``,  | timer softirq,  |
|                                                       | a SCHED_FIFO thread | any task        |
| kworkers (normal nice 0, highpri nice -20) are        | SCHED_OTHER         | SCHED_OTHER     |
| device interrupt handlers run in                      | ``irq/<n>-<name>``  | hard irq        |
|                                                       | threads, SCHED_FIFO | (no thread)     |

So under RT a work item is still ordinary CFS work: any RT task on its CPU, the
threaded interrupt handlers and the timer threads included, outranks it; and a delayed
item's expiry is a scheduling decision of a FIFO thread, not an interrupt.
"""

from __future__ import annotations

import errno

import pytest
from wqtest import new_items, online_cpus, wait_runs

from wqlab.client import WqlabClient
from wqlab.errors import GuestCommandError
from wqlab.tracefs import TraceInstance

pytestmark = pytest.mark.vm

SCHED_OTHER, SCHED_FIFO = 0, 1


def preempt_rt(c: WqlabClient) -> bool:
    return c.features()["preempt_rt"] == "1"


def sched_of(c: WqlabClient, pid: int) -> tuple[str, int, int]:
    """``(comm, nice, policy)`` of a task, from ``/proc/<pid>/stat``."""
    stat = c.agent.read(f"/proc/{pid}/stat")
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    rest = stat[stat.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): nice is field 19, policy field 41
    return comm, int(rest[19 - 3]), int(rest[41 - 3])


def tasks(c: WqlabClient) -> dict[int, str]:
    """pid -> comm of every task in the guest: ``/proc`` listed, then every ``comm`` read
    in one batch of the agent (no process per task: a ``cat`` costs 0.1 s or more under
    TCG). A task that exits in between fails the batch: list and read again."""
    for _ in range(10):
        pids = [int(n) for n in c.agent.request("listdir", path="/proc") if n.isdigit()]
        reads = [{"op": "read", "path": f"/proc/{pid}/comm"} for pid in pids]
        try:
            comms = c.agent.request("batch", steps=reads)
        except GuestCommandError as e:
            if e.errno != errno.ENOENT and e.errno != errno.ESRCH:
                raise
            continue
        return {pid: str(comm).strip() for pid, comm in zip(pids, comms, strict=True)}
    raise AssertionError("tasks kept exiting while /proc was read, 10 times in a row")


def test_delayed_work_timer_queues_from_ktimers_only_under_rt(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    rt = preempt_rt(wqlab)
    cpus = online_cpus(wqlab)
    items = new_items(wqlab, len(cpus), delayed=True)
    for cpu, item in zip(cpus, items, strict=True):
        assert wqlab.cmd("schedule_delayed_work_on", cpu=cpu, id=item, delay_ms=20).ret == 1
    obs = wait_runs(wqlab, wqlab_trace, {i: 1 for i in items})
    expected = (
        "PREEMPT_RT: queue_work by ktimers/<cpu> of the timer's CPU, in (threaded) softirq"
        if rt
        else "not RT: queue_work in timer softirq, by whatever task it interrupted, never ktimers"
    )
    for cpu, item in zip(cpus, items, strict=True):
        lc = obs.one(item)
        assert lc.queued_in_softirq, obs.explain(expected)
        assert lc.queuer is not None, obs.explain(expected)
        if rt:
            assert (lc.queuer, lc.queuer_cpu) == (f"ktimers/{cpu}", cpu), obs.explain(expected)
        else:
            assert not lc.queuer.startswith("ktimers/"), obs.explain(expected)
    if rt:
        for pid, comm in tasks(wqlab).items():
            if comm.startswith("ktimers/"):
                assert sched_of(wqlab, pid)[2] == SCHED_FIFO, f"{comm} is SCHED_FIFO"


@pytest.mark.parametrize(("wq", "nice"), [("system", 0), ("system_highpri", -20)])
def test_kworkers_stay_sched_other_with_or_without_rt(
    wqlab: WqlabClient, wqlab_trace: TraceInstance, wq: str, nice: int
) -> None:
    (item,) = new_items(wqlab, 1)
    assert wqlab.cmd("queue_work_on", wq=wq, cpu=online_cpus(wqlab)[0], id=item).ret == 1
    lc = wait_runs(wqlab, wqlab_trace, {item: 1}).one(item)
    assert lc.worker_pid is not None and lc.worker is not None
    comm, got_nice, policy = sched_of(wqlab, lc.worker_pid)
    rt = "PREEMPT_RT" if preempt_rt(wqlab) else "not RT"
    assert comm.startswith("kworker/"), (lc.worker, comm)
    assert (policy, got_nice) == (SCHED_OTHER, nice), (
        f"{rt}: {wq} worker {comm} (pid {lc.worker_pid}) is SCHED_OTHER nice {nice}; "
        f"observed policy {policy} nice {got_nice}"
    )


def test_device_interrupts_are_fifo_threads_only_under_rt(wqlab: WqlabClient) -> None:
    rt = preempt_rt(wqlab)
    cmdline = wqlab.agent.read("/proc/cmdline")
    if not rt and "threadirqs" in cmdline.split():
        pytest.skip("threadirqs on the kernel command line forces threaded interrupts")
    virtio = {p: n for p, n in tasks(wqlab).items() if n.startswith("irq/") and "virtio" in n}
    if rt:
        assert virtio, "PREEMPT_RT: virtio interrupt handlers run in irq/<n>-virtio* threads"
        for pid, comm in virtio.items():
            assert sched_of(wqlab, pid)[2] == SCHED_FIFO, f"{comm} is SCHED_FIFO"
    else:
        assert not virtio, f"not RT: virtio handlers run in hard irq, no threads: {virtio}"
