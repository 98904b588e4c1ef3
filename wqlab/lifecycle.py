"""Join workqueue trace events into one lifecycle per work item execution, and ask about them.

A lifecycle is one ``queue_work → activate_work → execute_start → execute_end`` cycle of a
work pointer. The same pointer cycles many times (re-queued, re-run), and a work function
may re-queue itself while it runs: that ``queue_work`` opens a *new* cycle while the running
one still waits for its ``execute_end``. Pure: events in, frozen records out.

    lcs = lifecycles(trace.parse(text), workqueue="ref_ordered")
    assert max_concurrency(lcs) == 1 and is_fifo(lcs)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from wqlab.trace import (
    ActivateWork,
    ExecuteEnd,
    ExecuteStart,
    QueueWork,
    Symbol,
    TraceEvent,
    WqlabEvent,
    softirq_flag,
)

__all__ = [
    "Lifecycle",
    "WorkerKind",
    "build_lifecycles",
    "by_work",
    "event_counts",
    "incomplete",
    "is_fifo",
    "lifecycles",
    "max_concurrency",
    "overlaps",
    "select",
    "worker_kind",
]


class WorkerKind(Enum):
    """What kind of worker executed an item, read from its task name and context."""

    BOUND = "bound"  # kworker/N:M
    BOUND_HIGHPRI = "bound-highpri"  # kworker/N:MH
    UNBOUND = "unbound"  # kworker/uN:M
    UNBOUND_HIGHPRI = "unbound-highpri"  # kworker/uN:MH (not named so upstream; accepted)
    RESCUER = "rescuer"  # kworker/R-<wq> (6.9+)
    BH = "bh"  # WQ_BH (6.9+): runs in softirq, in whatever task it interrupted
    OTHER = "other"


_KWORKER_RE = re.compile(r"kworker/(u?)(\d+):(\d+)(H?)(?:-.*)?")


def worker_kind(task: str, flags: str = "") -> WorkerKind:
    """Classify the executing context from the task name and the event's flags column."""
    if softirq_flag(flags) or task.startswith("ksoftirqd/"):
        return WorkerKind.BH
    if task.startswith("kworker/R-"):
        return WorkerKind.RESCUER
    m = _KWORKER_RE.fullmatch(task)
    if m is None:
        return WorkerKind.OTHER
    unbound, highpri = bool(m[1]), bool(m[4])
    if unbound:
        return WorkerKind.UNBOUND_HIGHPRI if highpri else WorkerKind.UNBOUND
    return WorkerKind.BOUND_HIGHPRI if highpri else WorkerKind.BOUND


@dataclass(frozen=True)
class Lifecycle:
    """One execution cycle of a work item. Timestamps are trace nanoseconds.

    Any part may be missing (``None``) when the trace began or ended mid-cycle, the ring
    buffer overran, or the item was cancelled while pending.
    """

    index: int  # order of the cycle's first event in the trace
    work: str
    function: Symbol | None
    workqueue: str | None = None
    req_cpu: int | None = None
    queue_cpu: int | None = None  # pool CPU from queue_work "cpu=", -1 when unbound
    queued_ns: int | None = None
    activated_ns: int | None = None
    started_ns: int | None = None
    ended_ns: int | None = None
    queuer: str | None = None  # task that queued it (``<idle>`` for a delayed work's timer)
    queuer_cpu: int | None = None
    queued_in_softirq: bool = False
    exec_cpu: int | None = None  # CPU of execute_start
    end_cpu: int | None = None  # CPU of execute_end (an unbound worker may migrate)
    worker: str | None = None
    worker_pid: int | None = None
    worker_kind: WorkerKind | None = None
    superseded: bool = False  # queued again before it ever started (cancelled, or lost events)
    marks: tuple[WqlabEvent, ...] = field(default=(), compare=False)

    @property
    def function_name(self) -> str:
        return "?" if self.function is None else str(self.function)

    @property
    def started(self) -> bool:
        return self.started_ns is not None

    @property
    def complete(self) -> bool:
        return self.queued_ns is not None and self.ended_ns is not None

    @property
    def unbound(self) -> bool:
        return self.queue_cpu == -1

    @property
    def queue_latency_ns(self) -> int | None:
        """queue_work → execute_start."""
        if self.queued_ns is None or self.started_ns is None:
            return None
        return self.started_ns - self.queued_ns

    @property
    def run_ns(self) -> int | None:
        """execute_start → execute_end."""
        if self.started_ns is None or self.ended_ns is None:
            return None
        return self.ended_ns - self.started_ns

    @property
    def activate_delay_ns(self) -> int | None:
        """queue_work → activate_work: time spent inactive behind max_active."""
        if self.queued_ns is None or self.activated_ns is None:
            return None
        return self.activated_ns - self.queued_ns

    @property
    def first_ns(self) -> int | None:
        for t in (self.queued_ns, self.activated_ns, self.started_ns, self.ended_ns):
            if t is not None:
                return t
        return None

    @property
    def item_id(self) -> int | None:
        """``id=`` of the module's own ``wqlab_*`` event seen during this cycle, if any."""
        for m in self.marks:
            if "id" in m.fields:
                return m.int_field("id")
        return None


class _Open:
    """A lifecycle being assembled (mutable); frozen into :class:`Lifecycle` at the end."""

    __slots__ = ("index", "f", "marks")

    def __init__(self, index: int, work: str) -> None:
        self.index = index
        self.f: dict[str, object] = {"work": work, "function": None}
        self.marks: list[WqlabEvent] = []

    def freeze(self) -> Lifecycle:
        return Lifecycle(index=self.index, marks=tuple(self.marks), **self.f)  # type: ignore[arg-type]


def build_lifecycles(events: Iterable[TraceEvent]) -> list[Lifecycle]:
    """Join events, in trace order, into lifecycles ordered by their first event."""
    every: list[_Open] = []
    pending: dict[str, _Open] = {}  # queued or activated, not started
    running: dict[str, list[tuple[int, _Open]]] = {}  # work -> [(worker pid, cycle)]
    last: dict[str, _Open] = {}

    def new(work: str) -> _Open:
        lc = _Open(len(every), work)
        every.append(lc)
        last[work] = lc
        return lc

    for ev in events:
        if isinstance(ev, QueueWork):
            old = pending.pop(ev.work, None)
            if old is not None:
                old.f["superseded"] = True
            lc = new(ev.work)
            lc.f.update(
                function=ev.function,
                workqueue=ev.workqueue,
                req_cpu=ev.req_cpu,
                queue_cpu=ev.queue_cpu,
                queued_ns=ev.ts_ns,
                queuer=ev.task,
                queuer_cpu=ev.cpu,
                queued_in_softirq=ev.softirq,
            )
            pending[ev.work] = lc
        elif isinstance(ev, ActivateWork):
            lc_p = pending.get(ev.work)
            if lc_p is None or "activated_ns" in lc_p.f:
                lc_p = new(ev.work)
                pending[ev.work] = lc_p
            lc_p.f["activated_ns"] = ev.ts_ns
            if lc_p.f["function"] is None:
                lc_p.f["function"] = ev.function
        elif isinstance(ev, ExecuteStart):
            lc_s = pending.pop(ev.work, None) or new(ev.work)
            lc_s.f.update(
                started_ns=ev.ts_ns,
                exec_cpu=ev.cpu,
                worker=ev.task,
                worker_pid=ev.pid,
                worker_kind=worker_kind(ev.task, ev.flags),
            )
            if lc_s.f["function"] is None:
                lc_s.f["function"] = ev.function
            running.setdefault(ev.work, []).append((ev.pid, lc_s))
        elif isinstance(ev, ExecuteEnd):
            runs = running.get(ev.work)
            lc_e: _Open | None = None
            if runs:
                k = next((i for i, (pid, _) in enumerate(runs) if pid == ev.pid), 0)
                lc_e = runs.pop(k)[1]
            if lc_e is None:  # the trace began while it ran
                lc_e = new(ev.work)
                lc_e.f.update(function=ev.function, worker=ev.task, worker_pid=ev.pid)
            lc_e.f.update(ended_ns=ev.ts_ns, end_cpu=ev.cpu)
        elif isinstance(ev, WqlabEvent):
            w = ev.fields.get("work")
            if w is None:
                continue
            runs = running.get(w)
            target = runs[-1][1] if runs else last.get(w)
            if target is not None:
                target.marks.append(ev)
    return [lc.freeze() for lc in every]


def _matches_function(lc: Lifecycle, function: str | Symbol) -> bool:
    if lc.function is None:
        return False
    if isinstance(function, Symbol):
        return lc.function == function or (
            function.name is not None
            and lc.function.name == function.name
            and (function.module is None or lc.function.module == function.module)
        )
    return lc.function.matches(function)


def select(
    lcs: Iterable[Lifecycle],
    workqueue: str | None = None,
    function: str | Symbol | None = None,
    work: str | None = None,
) -> list[Lifecycle]:
    """Filter lifecycles; each given criterion must match."""
    out = []
    for lc in lcs:
        if workqueue is not None and lc.workqueue != workqueue:
            continue
        if work is not None and lc.work != work:
            continue
        if function is not None and not _matches_function(lc, function):
            continue
        out.append(lc)
    return out


def lifecycles(
    events: Iterable[TraceEvent],
    workqueue: str | None = None,
    function: str | Symbol | None = None,
    work: str | None = None,
) -> list[Lifecycle]:
    """Build lifecycles from events and filter them (see :func:`select`).

    ``function`` matches ``"ref_fn"``, ``"ref_fn [refmod]"`` or a :class:`Symbol`.
    """
    return select(build_lifecycles(events), workqueue, function, work)


_INF = float("inf")


def _interval(lc: Lifecycle) -> tuple[float, float] | None:
    if lc.started_ns is None:
        return None
    return lc.started_ns, _INF if lc.ended_ns is None else lc.ended_ns


def overlaps(a: Lifecycle, b: Lifecycle) -> bool:
    """Both executed at some common instant (touching ends do not overlap).

    One that started but never ended in the trace counts as still running.
    """
    ia, ib = _interval(a), _interval(b)
    if ia is None or ib is None:
        return False
    return ia[0] < ib[1] and ib[0] < ia[1]


def max_concurrency(lcs: Iterable[Lifecycle]) -> int:
    """Most lifecycles executing at once; an end at t is counted before a start at t."""
    points: list[tuple[float, int]] = []
    for lc in lcs:
        iv = _interval(lc)
        if iv is not None:
            points.append((iv[0], 1))
            points.append((iv[1], -1))
    points.sort()  # (t, -1) sorts before (t, +1)
    best = cur = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


def is_fifo(lcs: Iterable[Lifecycle]) -> bool:
    """Items started in the order they were queued (items never started are ignored)."""
    seq = sorted(
        (lc for lc in lcs if lc.queued_ns is not None and lc.started_ns is not None),
        key=lambda lc: (lc.queued_ns, lc.index),
    )
    starts = [lc.started_ns for lc in seq]
    return all(
        a <= b for a, b in zip(starts, starts[1:], strict=False) if a is not None and b is not None
    )


def by_work(lcs: Iterable[Lifecycle]) -> dict[str, list[Lifecycle]]:
    """Lifecycles grouped by work pointer, each list in trace order."""
    out: dict[str, list[Lifecycle]] = {}
    for lc in lcs:
        out.setdefault(lc.work, []).append(lc)
    return out


def incomplete(lcs: Iterable[Lifecycle]) -> list[Lifecycle]:
    """Queued (or activated) but never started within the trace."""
    return [lc for lc in lcs if lc.started_ns is None and lc.ended_ns is None]


def event_counts(events: Iterable[TraceEvent]) -> Counter[str]:
    """How many events of each name (``workqueue_queue_work``: 9, ...)."""
    return Counter(ev.name for ev in events)


def executing_at(lcs: Sequence[Lifecycle], t_ns: int) -> list[Lifecycle]:
    """Lifecycles executing at instant ``t_ns``."""
    out = []
    for lc in lcs:
        iv = _interval(lc)
        if iv is not None and iv[0] <= t_ns < iv[1]:
            out.append(lc)
    return out
