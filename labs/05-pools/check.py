"""Lab 05 checks: CPU affinity and the concurrency-managed pools."""

from __future__ import annotations

from wqlab.grade import Check, Lab, Run, Scenario, ms
from wqlab.lifecycle import Lifecycle, WorkerKind, overlaps

CPU = 1


def _done(run: Run) -> bool:
    return all(
        len(run.ran(fn)) >= n
        for fn, n in (
            ("pool_lab_bound_fn", 1),
            ("pool_lab_unbound_fn", 1),
            ("pool_lab_highpri_fn", 1),
            ("pool_lab_spin_fn", 2),
            ("pool_lab_hog_fn", 2),
        )
    )


def _one(run: Run, fn: str, wq: str, todo: str) -> tuple[Lifecycle | None, str | None]:
    lcs = run.ran(fn)
    if not lcs:
        return None, f"{fn} never ran: {todo}"
    if lcs[0].workqueue != wq:
        return None, f"{fn} ran on {lcs[0].workqueue}, not {wq}: {todo}"
    return lcs[0], None


def bound_on_cpu(run: Run) -> str | None:
    lc, why = _one(run, "pool_lab_bound_fn", "pool_lab_bound", "TODO 1 and 5")
    if lc is None:
        return why
    if lc.exec_cpu != CPU:
        return (
            f"it ran on CPU {lc.exec_cpu}, not cpu={CPU}: queue_work_on(cpu, wq, work) "
            "picks the CPU of a per-CPU queue (queue_work() takes the queuing CPU)"
        )
    if lc.worker_kind is not WorkerKind.BOUND:
        return f"it ran in {lc.worker}: a per-CPU queue (flags 0) runs in kworker/N:M"
    return None


def unbound_worker(run: Run) -> str | None:
    lc, why = _one(run, "pool_lab_unbound_fn", "pool_lab_unbound", "TODO 2 and 6")
    if lc is None:
        return why
    if lc.worker_kind is not WorkerKind.UNBOUND:
        return f"it ran in {lc.worker}: WQ_UNBOUND queues run in kworker/uN:M"
    return None


def highpri_worker(run: Run) -> str | None:
    lc, why = _one(run, "pool_lab_highpri_fn", "pool_lab_highpri", "TODO 3 and 6")
    if lc is None:
        return why
    if lc.worker_kind is not WorkerKind.BOUND_HIGHPRI:
        return (
            f"it ran in {lc.worker}: WQ_HIGHPRI queues run in the CPU's highpri pool, "
            "kworker/N:MH (nice -20)"
        )
    return None


def _pair(run: Run, fn: str, wq: str, todo: str) -> tuple[list[Lifecycle], str | None]:
    lcs = run.ran(fn)
    if len(lcs) < 2:
        return [], f"{len(lcs)} of the two {fn} items ran: {todo}"
    if {lc.workqueue for lc in lcs} != {wq}:
        return (
            [],
            f"{fn} ran on {sorted({lc.workqueue or '?' for lc in lcs})}, not {wq}: {todo}",
        )
    if {lc.exec_cpu for lc in lcs} != {0}:
        return (
            [],
            f"{fn} ran on CPUs {[lc.exec_cpu for lc in lcs]}, not 0: queue_work_on(0, ...)",
        )
    return lcs, None


# 6.5+: a per-CPU item that has run this long is made CPU-intensive by the kernel itself,
# and its pool starts the next item beside it. The default (10 ms; up to 1 s on a CPU
# under 4000 BogoMIPS) is within what a busy TCG host can stretch a 4 ms spin to in guest
# time, so the lab raises it to 1 s, a value the kernel uses too: then only a sleep or
# WQ_CPU_INTENSIVE lets the pool start a second worker, on every kernel line.
THRESH = "/sys/module/workqueue/parameters/cpu_intensive_thresh_us"
THRESH_US = 1_000_000


def auto_intensive_ns(run: Run) -> int | None:
    """After how long the kernel makes a running per-CPU item CPU-intensive (None: never,
    before 6.5)."""
    if THRESH in run.tunables:
        return int(run.tunables[THRESH]) * 1000
    return 10_000_000 if run.kernel.line >= (6, 5) else None


def spinners_took_turns(run: Run) -> str | None:
    lcs, why = _pair(run, "pool_lab_spin_fn", "pool_lab_bound", "TODO 7 and 8")
    if why:
        return why
    a, b = sorted(lcs[:2], key=lambda lc: lc.started_ns or 0)
    if not overlaps(a, b):
        return None
    assert a.started_ns is not None and b.started_ns is not None
    waited = b.started_ns - a.started_ns
    auto = auto_intensive_ns(run)
    if auto is not None and waited >= auto:
        return None  # the first had become CPU-intensive: the kernel's own rule
    return (
        f"the two spinning items on pool_lab_bound overlapped ({ms(waited)} apart): a "
        "per-CPU pool starts another worker only when the running one sleeps; were they "
        "on one CPU, on a queue without WQ_CPU_INTENSIVE?"
    )


def hogs_overlapped(run: Run) -> str | None:
    lcs, why = _pair(run, "pool_lab_hog_fn", "pool_lab_cpu", "TODO 4, 9 and 10")
    if why:
        return why
    a, b = sorted(lcs[:2], key=lambda lc: lc.started_ns or 0)
    if not overlaps(a, b):
        return (
            "the two items on pool_lab_cpu took turns (the first one spun until its 250 ms "
            "deadline, waiting for the second): a WQ_CPU_INTENSIVE item does not count as "
            "running for the pool, so the second one gets a worker of its own at once; is "
            "pool_lab_cpu allocated with WQ_CPU_INTENSIVE?"
        )
    if a.worker_pid == b.worker_pid:
        return "both ran in one worker: they cannot have overlapped"
    assert a.started_ns is not None and b.started_ns is not None
    auto = auto_intensive_ns(run)
    if auto is not None and b.started_ns - a.started_ns >= auto:
        return (
            f"the second hog started {ms(b.started_ns - a.started_ns)} after the first: the "
            "kernel's own hog rule (workqueue.cpu_intensive_thresh_us), not the queue's "
            "flag; is pool_lab_cpu allocated with WQ_CPU_INTENSIVE?"
        )
    return None


LAB = Lab(
    name="05-pools",
    module="pool_lab",
    title="CPU affinity and the concurrency-managed pools: bound, unbound, highpri, cpu_intensive",
    scenarios=(
        Scenario(
            params={"cpu": CPU},
            done=_done,
            timeout=6.0,
            skip=lambda k: f"needs {CPU + 1} CPUs (--cpus {CPU + 1})" if k.cpus <= CPU else None,
            tunables={THRESH: str(THRESH_US)},
        ),
    ),
    checks=(
        Check(f"queue_work_on({CPU}) ran in a bound kworker of CPU {CPU}", 2, bound_on_cpu),
        Check("WQ_UNBOUND ran in an unbound kworker", 2, unbound_worker),
        Check("WQ_HIGHPRI ran in a highpri kworker", 2, highpri_worker),
        Check("two CPU hogs on a per-CPU queue took turns", 2, spinners_took_turns),
        Check("two CPU hogs on a WQ_CPU_INTENSIVE queue overlapped", 2, hogs_overlapped),
    ),
)
