"""Lab 03 checks: your own queue (alloc_workqueue flags, max_active)."""

from __future__ import annotations

from wqlab.grade import Check, Lab, Run, Scenario
from wqlab.lifecycle import WorkerKind, max_concurrency

ITEMS, MAX_ACTIVE = 6, 2
FN, WQ = "ownq_lab_fn", "ownq_lab"


def _done(run: Run) -> bool:
    return len(run.ran(FN)) >= ITEMS


def all_ran_on_own_queue(run: Run) -> str | None:
    lcs = run.ran(FN)
    if not lcs:
        return (
            f'{FN} never ran. TODO 1: alloc_workqueue("{WQ}", flags, max_active); '
            "TODO 2: queue_work(ownq_lab_wq, &ownq_lab_works[i])"
        )
    wqs = sorted({lc.workqueue or "?" for lc in lcs})
    if wqs != [WQ]:
        return (
            f"the items ran on {', '.join(wqs)}, not {WQ}: queue them with "
            f'queue_work(ownq_lab_wq, ...), on a queue named "{WQ}" (alloc_workqueue\'s '
            "first argument is a printf format: the name the trace shows)"
        )
    if len(lcs) != ITEMS:
        return f"{len(lcs)} of the {ITEMS} items ran: queue every one (TODO 2)"
    return None


def unbound_workers(run: Run) -> str | None:
    lcs = [lc for lc in run.ran(FN) if lc.workqueue == WQ]
    if not lcs:
        return f"no execution on {WQ} to look at"
    bad = [
        lc for lc in lcs if lc.worker_kind not in (WorkerKind.UNBOUND, WorkerKind.UNBOUND_HIGHPRI)
    ]
    if bad:
        return (
            f"{bad[0].worker} ran an item: a per-CPU (bound) kworker. WQ_UNBOUND in "
            "alloc_workqueue's flags gives the queue unbound workers, kworker/uN:M"
        )
    return None


def never_above_max_active(run: Run) -> str | None:
    lcs = [lc for lc in run.ran(FN) if lc.workqueue == WQ]
    if len(lcs) < ITEMS:
        return f"needs all {ITEMS} items on {WQ} (saw {len(lcs)})"
    c = max_concurrency(lcs)
    if c > MAX_ACTIVE:
        return (
            f"{c} items ran at once, more than max_active={MAX_ACTIVE}: pass max_active as "
            "alloc_workqueue's third argument (0 means the default, 256 or more)"
        )
    return None


def max_active_reached(run: Run) -> str | None:
    lcs = [lc for lc in run.ran(FN) if lc.workqueue == WQ]
    if len(lcs) < ITEMS:
        return f"needs all {ITEMS} items on {WQ} (saw {len(lcs)})"
    c = max_concurrency(lcs)
    if c < MAX_ACTIVE:
        return (
            f"at most {c} item ran at a time: max_active={MAX_ACTIVE} should let "
            f"{MAX_ACTIVE} sleep at once (max_active 1, or an ordered queue, serialises them)"
        )
    return None


def later_items_waited(run: Run) -> str | None:
    lcs = [lc for lc in run.ran(FN) if lc.workqueue == WQ]
    if len(lcs) < ITEMS:
        return f"needs all {ITEMS} items on {WQ} (saw {len(lcs)})"
    waited = [lc for lc in lcs if (lc.activate_delay_ns or 0) > 1_000_000]
    if len(waited) < ITEMS - MAX_ACTIVE:
        return (
            f"only {len(waited)} items were activated later than queued (expected "
            f"{ITEMS - MAX_ACTIVE}): beyond max_active an item waits inactive until a "
            "running one ends; is max_active what the module parameter says?"
        )
    return None


LAB = Lab(
    name="03-own-queue",
    module="ownq_lab",
    title="your own queue: alloc_workqueue flags and max_active",
    scenarios=(
        Scenario(params={"items": ITEMS, "max_active": MAX_ACTIVE}, done=_done, timeout=6.0),
    ),
    checks=(
        Check(f"all {ITEMS} items ran on {WQ}", 3, all_ran_on_own_queue),
        Check("unbound workers ran them", 2, unbound_workers),
        Check(f"never more than max_active={MAX_ACTIVE} at once", 2, never_above_max_active),
        Check(f"{MAX_ACTIVE} ran at once", 2, max_active_reached),
        Check("the items beyond max_active waited inactive", 1, later_items_waited),
    ),
)
