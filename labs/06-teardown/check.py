"""Lab 06 checks: safe teardown (cancel and flush before free, destroy the queue last)."""

from __future__ import annotations

from wqlab.grade import MARK_UNLOAD, MARK_UNLOADED, Check, Lab, Run, Scenario

FN, WQ = "teardown_lab_tick_fn", "teardown_lab"
PERIOD_MS = 50


def _done(run: Run) -> bool:
    return len(run.ran(FN)) >= 5


def ticked(run: Run) -> str | None:
    t = run.marks.get(MARK_UNLOAD)
    lcs = [lc for lc in run.ran(FN) if t is None or (lc.started_ns or 0) < t]
    if not lcs:
        return (
            f"{FN} never ran: TODO 1, queue_delayed_work(teardown_lab_wq, "
            "&teardown_lab_dev->tick, 0)"
        )
    if {lc.workqueue for lc in lcs} != {WQ}:
        return f"the tick ran on {sorted({lc.workqueue or '?' for lc in lcs})}, not {WQ}"
    if len(lcs) < 3:
        return f"the tick ran {len(lcs)} times before rmmod: it should re-arm every {PERIOD_MS} ms"
    return None


def nothing_after_rmmod(run: Run) -> str | None:
    if not run.fn(FN):
        return f"{FN} never ran: nothing to stop (TODO 1 first)"
    t = run.marks.get(MARK_UNLOADED)
    if t is None:
        return "rmmod did not finish"
    late = [
        lc
        for lc in run.fn(FN)
        if any(x is not None and x > t for x in (lc.queued_ns, lc.started_ns, lc.ended_ns))
    ]
    if late:
        return (
            "the tick was queued or ran after rmmod had returned, in code that is gone: "
            "cancel_delayed_work_sync() in the exit function (TODO 2); cancel_delayed_work() "
            "does not wait, and the running tick re-arms itself"
        )
    return None


def last_tick_ended_before_unload(run: Run) -> str | None:
    lcs = run.fn(FN)
    if not lcs:
        return f"{FN} never ran: nothing to wait for (TODO 1 first)"
    t = run.marks.get(MARK_UNLOADED)
    if t is None:
        return "rmmod did not finish"
    running = [lc for lc in lcs if lc.started_ns is not None and (lc.ended_ns or t + 1) > t]
    if running:
        return (
            "a tick was still running when rmmod returned: the _sync cancel waits for a run "
            "in progress (TODO 2), and destroy_workqueue() comes after it (TODO 3)"
        )
    return None


LAB = Lab(
    name="06-teardown",
    module="teardown_lab",
    title="safe teardown: cancel and flush before free, rmmod",
    scenarios=(
        Scenario(params={"period_ms": PERIOD_MS}, done=_done, timeout=5.0, after_unload=0.5),
    ),
    checks=(
        Check(f"the tick re-armed itself every {PERIOD_MS} ms on {WQ}", 3, ticked),
        Check("nothing was queued or ran after rmmod", 4, nothing_after_rmmod),
        Check("no tick was running when rmmod returned", 3, last_tick_ended_before_unload),
    ),
)
