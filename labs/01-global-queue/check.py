"""Lab 01 checks: the global queue (DECLARE_WORK, schedule_work, flush_work)."""

from __future__ import annotations

from wqlab.grade import Check, Lab, Run, Scenario
from wqlab.lifecycle import WorkerKind

RUNS = 3
FN = "global_lab_fn"


def _done(run: Run) -> bool:
    return len(run.ran(FN)) >= RUNS


def ran_runs_times(run: Run) -> str | None:
    n = len(run.ran(FN))
    if n == RUNS:
        return None
    if n == 0:
        return (
            f"{FN} never ran. TODO 1: DECLARE_WORK(global_lab_work, {FN}); TODO 2: "
            "schedule_work(&global_lab_work) in the loop"
        )
    if n < RUNS:
        return (
            f"{FN} ran {'once' if n == 1 else f'{n} times'}, not {RUNS} times: schedule_work() "
            "on an item that is still pending "
            "returns false and queues nothing. TODO 3: flush_work() waits for the run "
            "before the loop queues it again"
        )
    return f"{FN} ran {n} times, not {RUNS} (runs={RUNS}): queue it once per loop turn"


def on_events(run: Run) -> str | None:
    lcs = run.fn(FN)
    if not lcs:
        return f"no execution of {FN} to look at"
    wqs = sorted({lc.workqueue or "?" for lc in lcs})
    if wqs == ["events"]:
        return None
    return (
        f"{FN} was queued on {', '.join(wqs)}: schedule_work() puts it on the system "
        "workqueue, system_wq, whose name in the trace is `events`"
    )


def each_run_waited(run: Run) -> str | None:
    lcs = run.ran(FN)
    if len(lcs) < 2:
        return f"needs at least two runs of {FN} to compare (saw {len(lcs)})"
    for a, b in zip(lcs, lcs[1:], strict=False):
        if b.queued_ns is None or a.ended_ns is None or b.queued_ns < a.ended_ns:
            return (
                "a run was queued before the previous one had ended: flush_work() (TODO 3) "
                "returns only once the item is idle"
            )
    return None


def bound_worker_of_queuing_cpu(run: Run) -> str | None:
    lcs = run.ran(FN)
    if not lcs:
        return f"no execution of {FN} to look at"
    for lc in lcs:
        if lc.worker_kind is not WorkerKind.BOUND:
            return (
                f"{FN} ran in {lc.worker}, not in a per-CPU kworker/N:M (bound); "
                "system_wq is a bound (per-CPU) queue; use schedule_work(), not "
                "queue_work(system_unbound_wq, ...) or system_highpri_wq"
            )
        if lc.exec_cpu != lc.queuer_cpu:
            return (
                f"{FN} was queued on CPU {lc.queuer_cpu} but ran on CPU {lc.exec_cpu}: "
                "schedule_work() runs it on the CPU that queued it (did you use "
                "schedule_work_on()?)"
            )
    return None


LAB = Lab(
    name="01-global-queue",
    module="global_lab",
    title="the global queue: DECLARE_WORK, schedule_work, flush_work",
    scenarios=(Scenario(params={"runs": RUNS}, done=_done, timeout=6.0),),
    checks=(
        Check(f"{FN} ran {RUNS} times", 4, ran_runs_times),
        Check("it ran on the system workqueue (events)", 2, on_events),
        Check("each run was queued after the previous one ended", 2, each_run_waited),
        Check("a bound kworker of the queuing CPU ran it", 2, bound_worker_of_queuing_cpu),
    ),
)
