"""Lab 04 checks: ordering, alloc_ordered_workqueue() against max_active > 1."""

from __future__ import annotations

from wqlab.grade import Check, Lab, Run, Scenario
from wqlab.lifecycle import is_fifo, max_concurrency

N = 4
ORD_FN, PAR_FN = "order_lab_ordered_fn", "order_lab_parallel_fn"
ORD_WQ, PAR_WQ = "order_lab_ord", "order_lab_par"


def _done(run: Run) -> bool:
    return len(run.ran(ORD_FN)) >= N and len(run.ran(PAR_FN)) >= N


def _on(run: Run, fn: str, wq: str, todo: str) -> str | None:
    lcs = run.ran(fn)
    if not lcs:
        return f"{fn} never ran: {todo}"
    wqs = sorted({lc.workqueue or "?" for lc in lcs})
    if wqs != [wq]:
        return f"{fn} ran on {', '.join(wqs)}, not {wq}: {todo}"
    if len(lcs) != N:
        return f"{len(lcs)} of the {N} items of {fn} ran: queue each one (TODO 3)"
    return None


def ordered_ran(run: Run) -> str | None:
    return _on(run, ORD_FN, ORD_WQ, f'TODO 1: alloc_ordered_workqueue("{ORD_WQ}", 0); TODO 3')


def ordered_never_overlapped(run: Run) -> str | None:
    lcs = run.ran(ORD_FN)
    if len(lcs) < N:
        return f"needs the {N} items of {ORD_FN} (saw {len(lcs)})"
    c = max_concurrency(lcs)
    if c > 1:
        return (
            f"{c} items of the ordered queue ran at once: alloc_ordered_workqueue() runs one "
            "at a time; alloc_workqueue(WQ_UNBOUND, 1) is not ordered on every kernel "
            "(6.9 and later: per NUMA node)"
        )
    return None


def ordered_fifo(run: Run) -> str | None:
    lcs = run.ran(ORD_FN)
    if len(lcs) < N:
        return f"needs the {N} items of {ORD_FN} (saw {len(lcs)})"
    if not is_fifo(lcs):
        return "the ordered queue's items did not start in the order they were queued"
    return None


def parallel_ran(run: Run) -> str | None:
    return _on(run, PAR_FN, PAR_WQ, f'TODO 2: alloc_workqueue("{PAR_WQ}", WQ_UNBOUND, 4); TODO 3')


def parallel_overlapped(run: Run) -> str | None:
    lcs = run.ran(PAR_FN)
    if len(lcs) < N:
        return f"needs the {N} items of {PAR_FN} (saw {len(lcs)})"
    c = max_concurrency(lcs)
    if c < 2:
        return (
            "the items of order_lab_par never ran at the same time: with max_active 4 "
            "sleeping items run side by side (max_active 1 or an ordered queue serialises)"
        )
    return None


LAB = Lab(
    name="04-ordering",
    module="order_lab",
    title="ordering: alloc_ordered_workqueue against max_active > 1",
    scenarios=(Scenario(done=_done, timeout=6.0),),
    checks=(
        Check(f"{N} items ran on the ordered queue {ORD_WQ}", 2, ordered_ran),
        Check("the ordered queue ran one item at a time", 3, ordered_never_overlapped),
        Check("the ordered queue ran them in queueing order", 1, ordered_fifo),
        Check(f"{N} items ran on {PAR_WQ}", 2, parallel_ran),
        Check(f"items of {PAR_WQ} ran side by side", 2, parallel_overlapped),
    ),
)
