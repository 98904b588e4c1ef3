"""Lab 02 checks: delayed work and cancellation."""

from __future__ import annotations

from wqlab.grade import MARK_LOAD, MARK_LOADED, Check, Lab, Run, Scenario, ms
from wqlab.lifecycle import WorkerKind

DELAY_MS = 200
FN, LATE = "delayed_lab_fn", "delayed_lab_late_fn"
JIFFY_NS = 4_000_000  # HZ=250 on Debian kernels: a timer may fire up to a jiffy early
SLACK_NS = 150_000_000  # timer softirq and worker wake-up under TCG


def ran_once(run: Run) -> str | None:
    n = len(run.ran(FN))
    if n == 1:
        return None
    if n == 0:
        return (
            f"{FN} never ran. TODO 1: DECLARE_DELAYED_WORK(delayed_lab_work, {FN}); TODO 3: "
            "schedule_delayed_work(&delayed_lab_work, msecs_to_jiffies(delay_ms))"
        )
    return f"{FN} ran {n} times: arm it once"


def queued_by_timer_after_delay(run: Run) -> str | None:
    lcs = run.fn(FN)
    if not lcs or lcs[0].queued_ns is None:
        return f"no queueing of {FN} to look at"
    lc = lcs[0]
    t0, t1 = run.marks.get(MARK_LOAD), run.marks.get(MARK_LOADED)
    if t0 is None or t1 is None:
        return "the grader's load marks are missing from the trace (trace overrun?)"
    assert lc.queued_ns is not None
    if not lc.queued_in_softirq:
        return (
            f"{FN} was queued by {lc.queuer} in process context, not by a timer: "
            "schedule_delayed_work() arms a timer whose softirq queues the item when it "
            "expires (msleep() then schedule_work() blocks insmod instead)"
        )
    early, late = lc.queued_ns - t0, lc.queued_ns - t1
    if early < DELAY_MS * 1_000_000 - JIFFY_NS:
        return (
            f"{FN} was queued {ms(early)} after the load began, before delay_ms={DELAY_MS}: "
            "the delay is in jiffies: msecs_to_jiffies(delay_ms)"
        )
    if late > DELAY_MS * 1_000_000 + SLACK_NS:
        return (
            f"{FN} was queued {ms(late)} after the load ended, much later than "
            f"delay_ms={DELAY_MS}: a delay of delay_ms jiffies is {1000 // 250} times "
            "longer at HZ=250; convert with msecs_to_jiffies(delay_ms)"
        )
    return None


def late_never_ran(run: Run) -> str | None:
    if run.fn(LATE):
        return (
            f"{LATE} ran (or was queued): cancel it before it expires, TODO 5: "
            "cancel_delayed_work_sync(&delayed_lab_late)"
        )
    if run.param("cancelled") != "Y":
        return (
            f"cancelled={run.param('cancelled', '?')}: cancel_delayed_work_sync() found "
            "nothing pending. TODO 2 and 4: declare and arm delayed_lab_late first; TODO 5: "
            "store what the cancel returned in cancelled"
        )
    return None


def on_events_bound(run: Run) -> str | None:
    lcs = run.ran(FN)
    if not lcs:
        return f"no execution of {FN} to look at"
    lc = lcs[0]
    if lc.workqueue != "events":
        return f"{FN} ran on {lc.workqueue}: schedule_delayed_work() uses system_wq (events)"
    if lc.worker_kind is not WorkerKind.BOUND:
        return f"{FN} ran in {lc.worker}: system_wq's workers are per-CPU kworker/N:M"
    return None


LAB = Lab(
    name="02-delayed-work",
    module="delayed_lab",
    title="delayed work and cancellation",
    # delayed_lab_late would fire 5 * DELAY_MS after the load: watch past that
    scenarios=(Scenario(params={"delay_ms": DELAY_MS}, timeout=5 * DELAY_MS / 1000 + 0.6),),
    checks=(
        Check(f"{FN} ran once", 3, ran_once),
        Check(
            f"its timer queued it delay_ms ({DELAY_MS} ms) after the load",
            3,
            queued_by_timer_after_delay,
        ),
        Check(f"{LATE} was cancelled before it ran", 2, late_never_ran),
        Check("it ran on system_wq (events) in a per-CPU kworker", 2, on_events_bound),
    ),
)
