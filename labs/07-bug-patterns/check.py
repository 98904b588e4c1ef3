"""Lab 07 checks: the workqueue mistakes the kernel reports itself, each provoked on
purpose (one load per mistake) and matched to the kernel's exact report."""

from __future__ import annotations

from collections.abc import Callable

from wqlab.grade import Check, Expect, KernelInfo, Lab, Run, Scenario

# The kernel's words (kernel/workqueue.c of 6.1 and 6.12, lib/debugobjects.c,
# kernel/locking/lockdep.c); the first line's kind is wqlab.splat's.
FLUSH_DEP = Expect(
    "WARNING",
    r"WQ_MEM_RECLAIM bugs_lab_reclaim:bugs_lab_flusher_fn.* is flushing "
    r"!WQ_MEM_RECLAIM bugs_lab_plain:bugs_lab_target_fn",
)
# __queue_work(): WARN_ON_ONCE(!is_chained_work(wq)) for a draining (and, 6.3+,
# destroying) queue: the WARNING line names the function
DRAINING = Expect(
    "WARNING", r"WARNING: CPU: \d+ PID: \d+ at \S*kernel/workqueue\.c:\d+ __queue_work"
)
BUSY_PWQ = Expect("WARNING", r"destroy_workqueue: bugs_lab_dying has the following busy pwq")
FREE_ACTIVE = Expect(
    "ODEBUG", r"ODEBUG: free active \(active state \d+\) object: ?\S+ object type: work_struct"
)
# ODEBUG's report ends in a WARN of its own (debug_print_object): part of the same report
ODEBUG_WARN = Expect("WARNING", r"lib/debugobjects\.c:\d+ debug_print_object")
SELF_FLUSH = Expect("lockdep", r"possible recursive locking detected[\s\S]*bugs_lab_selfish")


def _before_6_3(k: KernelInfo) -> str | None:
    if k.line >= (6, 3):
        return (
            f"{k.version}: from 6.3 destroy_workqueue() marks the queue __WQ_DESTROYING and "
            "__queue_work() refuses the straggler with the queue_draining case's WARN "
            "(once per boot): the busy-pwq report is a 6.1-line lesson"
        )
    return None


def _needs(*options: str, what: str) -> Callable[[KernelInfo], str | None]:
    def skip(k: KernelInfo) -> str | None:
        missing = [o for o in options if o not in k.config]
        if missing:
            return (
                f"{k.version} has no {', '.join(missing)}: {what} needs the debug line "
                "(`make kernel KERNEL=debug`, then `wqlab grade 07 --kernel debug`)"
            )
        return None

    return skip


def _reported(name: str, exp: Expect, hint: str) -> Check:
    def fn(run: Run) -> str | None:
        if any(exp.matches(s) for s in run.reports):
            return None
        return hint

    return Check(name, 3, fn, scenario=name)


def flush_waited(run: Run) -> str | None:
    flusher, target = run.ran("bugs_lab_flusher_fn"), run.ran("bugs_lab_target_fn")
    if not flusher or not target:
        return "bugs_lab_flusher_fn and bugs_lab_target_fn must both run (bug=flush_dependency)"
    f, t = flusher[0], target[0]
    if f.workqueue != "bugs_lab_reclaim" or t.workqueue != "bugs_lab_plain":
        return "the flusher runs on bugs_lab_reclaim, its target on bugs_lab_plain"
    assert f.ended_ns is not None and t.ended_ns is not None
    if t.ended_ns > f.ended_ns:
        return (
            "the flusher ended before its target: flush_work(&bugs_lab_target) (TODO 1) "
            "makes it wait, and that wait is what the kernel warns about"
        )
    return None


SCENARIOS = (
    Scenario("flush_dependency", {"bug": "flush_dependency"}, timeout=1.0, expect=(FLUSH_DEP,)),
    Scenario("queue_draining", {"bug": "queue_draining"}, timeout=1.0, expect=(DRAINING,)),
    Scenario(
        "destroy_busy",
        {"bug": "destroy_busy"},
        timeout=1.0,
        expect=(BUSY_PWQ,),
        skip=_before_6_3,
    ),
    Scenario(
        "free_active",
        {"bug": "free_active"},
        timeout=1.0,
        expect=(FREE_ACTIVE, ODEBUG_WARN),
        skip=_needs(
            "CONFIG_DEBUG_OBJECTS_FREE", "CONFIG_DEBUG_OBJECTS_WORK", what="ODEBUG's free check"
        ),
    ),
    # last: the self-flush wedges a worker for good, the module stays (a fresh VM next)
    Scenario(
        "self_flush",
        {"bug": "self_flush"},
        timeout=3.0,
        expect=(SELF_FLUSH,),
        unload=False,
        skip=_needs("CONFIG_PROVE_LOCKING", what="lockdep"),
    ),
)

LAB = Lab(
    name="07-bug-patterns",
    module="bugs_lab",
    title="bug patterns the kernel reports: flush dependency, draining, busy destroy, "
    "ODEBUG, lockdep",
    scenarios=SCENARIOS,
    checks=(
        _reported(
            "flush_dependency",
            FLUSH_DEP,
            "no check_flush_dependency WARNING: bugs_lab_flusher_fn runs on a WQ_MEM_RECLAIM "
            "queue; make it wait for bugs_lab_target, an item of a !WQ_MEM_RECLAIM queue "
            "(TODO 1: flush_work)",
        ),
        Check("the flush waited for its target", 1, flush_waited, scenario="flush_dependency"),
        _reported(
            "queue_draining",
            DRAINING,
            "no __queue_work WARNING: while drain_workqueue() waits for the blocker, queue "
            "`late` on bugs_lab_drainq from init, which is not one of its workers (TODO 2)",
        ),
        _reported(
            "destroy_busy",
            BUSY_PWQ,
            "no busy-pwq report: bugs_lab_hook runs inside destroy_workqueue(), after the "
            "drain; queue bugs_lab_straggler on bugs_lab_dying there (TODO 3)",
        ),
        _reported(
            "free_active",
            FREE_ACTIVE,
            "no ODEBUG 'free active' report: kfree(obj) while obj->work is still queued "
            "behind the blocker (TODO 4)",
        ),
        _reported(
            "self_flush",
            SELF_FLUSH,
            "no lockdep report: bugs_lab_selfish_fn must flush_work() its own work item (TODO 5)",
        ),
    ),
)
