"""Shared helpers for the behaviour tests in tests/vm/: wait for trace events with a
deadline, select lifecycles by wqlab item id, and explain a failure as an
expected-vs-observed table of lifecycles.

    items = new_items(wqlab, 3)
    for i in items:
        wqlab.cmd("queue_work", wq="system", id=i)
    obs = wait_runs(wqlab, trace, {i: 1 for i in items})
    assert obs.max_concurrency() >= 1, obs.explain("every item ran once")
"""

from __future__ import annotations

import errno
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import pytest

from wqlab.client import WqlabClient
from wqlab.lifecycle import Lifecycle, build_lifecycles, max_concurrency
from wqlab.report import format_lifecycles, format_timeline
from wqlab.trace import (
    ExecuteEnd,
    ExecuteStart,
    QueueWork,
    TraceEvent,
    WqlabEvent,
    irq_column,
    parse,
)
from wqlab.tracefs import TraceInstance
from wqlab.uapi import COMMAND_NRS
from wqlab.wait import wait_for

# Timeouts are generous: TCG on 2 shared host cores is slow and noisy.
WAIT_S = 30.0


def new_items(c: WqlabClient, n: int, delayed: bool = False) -> list[int]:
    """Allocate ``n`` dynamic items; return their ids."""
    out = []
    for _ in range(n):
        r = c.cmd("work_new", delayed=1) if delayed else c.cmd("work_new")
        out.append(int(r["id"]))
    return out


def ptrs(c: WqlabClient, ids: Iterable[int]) -> dict[int, str]:
    """id -> hashed work pointer (the ``work struct=`` of the trace)."""
    table = {int(w["id"]): w["ptr"] for w in c.works()}
    return {i: table[i] for i in ids}


def new_item(c: WqlabClient, delayed: bool = False) -> int:
    """Allocate one dynamic item; return its id."""
    r = c.cmd("work_new", delayed=1) if delayed else c.cmd("work_new")
    assert r.ret == 0
    return int(r["id"])


def poll(what: str, pred: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """:func:`wqlab.wait.wait_for` with the tests' default deadline (``WAIT_S``): call
    ``pred`` until it returns something true; return that, or fail at the deadline."""
    return wait_for(what, pred, timeout)


def features(c: WqlabClient) -> dict[str, str]:
    return c.features()


def hz_tick_ns(c: WqlabClient) -> int:
    return 1_000_000_000 // int(c.features()["hz"])


def kernel_version(c: WqlabClient) -> tuple[int, int]:
    rel = c.features()["kernel"]
    major, minor = rel.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def online_cpus(c: WqlabClient) -> list[int]:
    text = c.agent.read("/sys/devices/system/cpu/online").strip()
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


@dataclass
class Observed:
    """What the trace showed for a set of wqlab items."""

    text: str
    events: list[TraceEvent]
    ids: dict[int, str]  # id -> ptr
    all_lcs: list[Lifecycle] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.all_lcs = build_lifecycles(self.events)

    @property
    def by_ptr(self) -> dict[str, int]:
        return {p: i for i, p in self.ids.items()}

    def lcs(self, *ids: int) -> list[Lifecycle]:
        """Lifecycles of these items (all known items if none given), in trace order."""
        want = {self.ids[i] for i in (ids or self.ids)}
        return [lc for lc in self.all_lcs if lc.work in want]

    def ran(self, *ids: int) -> list[Lifecycle]:
        return [lc for lc in self.lcs(*ids) if lc.started_ns is not None]

    def one(self, item: int) -> Lifecycle:
        lcs = self.ran(item)
        assert len(lcs) == 1, self.explain(f"item {item} ran exactly once")
        return lcs[0]

    def count(self, kind: type[TraceEvent], item: int) -> int:
        p = self.ids[item]
        return sum(
            1 for ev in self.events if isinstance(ev, kind) and getattr(ev, "work", None) == p
        )

    def of(self, kind: type[TraceEvent], item: int) -> list[TraceEvent]:
        p = self.ids[item]
        return [ev for ev in self.events if isinstance(ev, kind) and getattr(ev, "work", None) == p]

    def cmd_events(self, name: str, item: int | None = None) -> list[WqlabEvent]:
        """``wqlab_cmd`` events of one command (traced when the command returned)."""
        nr = COMMAND_NRS[name]
        out = []
        for ev in self.events:
            if isinstance(ev, WqlabEvent) and ev.name == "wqlab_cmd":
                if ev.int_field("nr") != nr:
                    continue
                if item is not None and ev.int_field("id") != item:
                    continue
                out.append(ev)
        return out

    def cmd_ns(self, name: str, item: int | None = None, which: int = -1) -> int:
        evs = self.cmd_events(name, item)
        assert evs, self.explain(f"a wqlab_cmd event for {name} (id={item}) in the trace")
        return evs[which].ts_ns

    def max_concurrency(self, *ids: int) -> int:
        return max_concurrency(self.lcs(*ids))

    def label(self, lc: Lifecycle) -> str:
        return f"id={self.by_ptr.get(lc.work, '?')}"

    def explain(self, expected: str, lcs: Sequence[Lifecycle] | None = None) -> str:
        """The readable failure message: what was expected, then what the trace showed."""
        lcs = self.lcs() if lcs is None else lcs
        legend = ", ".join(f"{i}={p[-8:]}" for i, p in sorted(self.ids.items()))
        return (
            f"\nexpected: {expected}\n"
            f"observed ({len(lcs)} lifecycles; item id=work ptr suffix: {legend}):\n"
            f"{format_lifecycles(lcs)}\n\n{format_timeline(lcs)}\n"
        )


# The kernel's timer events: a delayed item's timer in jiffies (enable_events before the
# command; the next arm of the instance turns them off)
TIMER_EVENTS = ("timer/timer_start", "timer/timer_expire_entry")
_TIMER_START_RE = re.compile(r"timer=(\S+) function=(\S+) expires=(\d+) \[timeout=(-?\d+)\]")
_TIMER_FIRED_RE = re.compile(r"timer=(\S+) function=(\S+) now=(\d+)")


@dataclass(frozen=True)
class ArmedTimer:
    """A delayed item's timer as the kernel traced it, in jiffies: armed in a command
    (``timer_start``), fired (``timer_expire_entry``, ``fired_ns`` its trace time)."""

    timeout: int  # expires minus jiffies when timer_start was traced
    expires: int
    fired: int  # jiffies when the timer function ran
    fired_ns: int


def armed_timer(obs: Observed, cmd: str, item: int) -> ArmedTimer:
    """The ``delayed_work_timer_fn`` timer that the (last) command ``cmd`` on ``item``
    armed: the last ``timer_start`` of it in the commanding task before the command's
    ``wqlab_cmd`` event, and that timer's first ``timer_expire_entry`` after it."""
    ev = obs.cmd_events(cmd, item)[-1]
    starts = [
        e
        for e in obs.events
        if e.name == "timer_start"
        and e.pid == ev.pid
        and irq_column(e.flags) == irq_column(ev.flags)  # not an interrupt's, same task
        and e.ts_ns <= ev.ts_ns
        and " function=delayed_work_timer_fn " in e.body
    ]
    assert starts, obs.explain(f"{cmd} armed a delayed_work_timer_fn timer (timer_start)")
    m = _TIMER_START_RE.search(starts[-1].body)
    assert m, f"a timer_start line this helper cannot read: {starts[-1].body!r}"
    fired = [
        e
        for e in obs.events
        if e.name == "timer_expire_entry"
        and e.ts_ns >= starts[-1].ts_ns
        and e.body.startswith(f"timer={m[1]} ")
    ]
    assert fired, obs.explain(f"the timer {cmd} armed fired (timer_expire_entry)")
    f = _TIMER_FIRED_RE.search(fired[0].body)
    assert f, f"a timer_expire_entry line this helper cannot read: {fired[0].body!r}"
    return ArmedTimer(int(m[4]), int(m[3]), int(f[3]), fired[0].ts_ns)


def observe(c: WqlabClient, wqlab_trace: TraceInstance, ids: Iterable[int]) -> Observed:
    """Read the trace once, now."""
    text = wqlab_trace.read()
    return Observed(text, parse(text), ptrs(c, ids))


def wait_until(
    c: WqlabClient,
    wqlab_trace: TraceInstance,
    ids: Iterable[int],
    done: Callable[[Observed], bool],
    expected: str,
    timeout: float = WAIT_S,
) -> Observed:
    """Poll the trace until ``done(observed)``; fail with the table on the deadline."""
    id_ptr = ptrs(c, ids)
    seen: list[Observed] = []

    def observed() -> Observed | None:
        text = wqlab_trace.read()
        seen[:] = [Observed(text, parse(text), id_ptr)]
        return seen[0] if done(seen[0]) else None

    return wait_for(expected, observed, timeout, explain=lambda: seen[0].explain(expected))


def wait_runs(
    c: WqlabClient,
    wqlab_trace: TraceInstance,
    runs: Mapping[int, int],
    extra: Iterable[int] = (),
    timeout: float = WAIT_S,
) -> Observed:
    """Wait until each item has at least ``runs[id]`` execute_end events."""

    def done(o: Observed) -> bool:
        return all(o.count(ExecuteEnd, i) >= n for i, n in runs.items())

    want = ", ".join(f"id={i}: {n} run(s)" for i, n in runs.items())
    return wait_until(c, wqlab_trace, [*runs, *extra], done, f"completed runs {want}", timeout)


def wait_event(
    c: WqlabClient,
    wqlab_trace: TraceInstance,
    ids: Iterable[int],
    kind: type[TraceEvent] | str,
    item: int,
    n: int = 1,
    timeout: float = WAIT_S,
) -> Observed:
    """Wait for ``n`` events of a kind (a class, or a ``wqlab_*`` event name) of ``item``."""

    def count(o: Observed) -> int:
        if isinstance(kind, str):
            return sum(
                1
                for ev in o.events
                if isinstance(ev, WqlabEvent) and ev.name == kind and ev.get("id") == str(item)
            )
        return o.count(kind, item)

    name = kind if isinstance(kind, str) else kind.__name__
    return wait_until(
        c,
        wqlab_trace,
        {*ids, item},
        lambda o: count(o) >= n,
        f"{n} {name} event(s) of id={item}",
        timeout,
    )


def wait_blocked(
    c: WqlabClient, wqlab_trace: TraceInstance, ids: Iterable[int], item: int, n: int = 1
) -> Observed:
    return wait_event(c, wqlab_trace, ids, "wqlab_work_block", item, n)


def still_running(fut: Future[Any], seconds: float = 0.3) -> bool:
    """True if the blocking command has not returned within ``seconds`` (a bounded wait)."""
    try:
        fut.result(timeout=seconds)
    except FutureTimeout:
        return False if fut.done() else True
    except Exception:  # it returned (with an error): not running
        return False
    return False


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def ms(ns: int | float | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.3f} ms"


# Re-exported for the tests.
__all__ = [
    "TIMER_EVENTS",
    "ArmedTimer",
    "armed_timer",
    "new_item",
    "poll",
    "hog_detection_off",
    "ExecuteEnd",
    "ExecuteStart",
    "Observed",
    "QueueWork",
    "WAIT_S",
    "hz_tick_ns",
    "kernel_version",
    "median",
    "ms",
    "new_items",
    "observe",
    "online_cpus",
    "ptrs",
    "still_running",
    "wait_blocked",
    "wait_event",
    "wait_runs",
    "wait_until",
]


SCHED_PREEMPT = "/sys/kernel/debug/sched/preempt"


# The kernel arguments of a VM with full preemption from its boot (``wqlab_cmdline``).
PREEMPT_FULL_CMDLINE = pytest.mark.wqlab_cmdline("preempt=full")


class preempt_full:  # used as a context manager, reads like a statement
    """Make sure a PREEMPT_DYNAMIC kernel runs with ``full`` preemption in a block.

    Debian's kernels boot ``voluntary``: a kworker busy-waiting (``spin_us``) is never
    preempted, so no other task (a highpri worker, a second worker of the same pool) can
    run on its CPU until it ends, and timing claims about CPU hogs say nothing about the
    workqueue. A PREEMPT_RT (or PREEMPT) kernel is fully preemptible already: a no-op
    there. ``skip`` if the kernel can be neither.

    Tests mark themselves ``PREEMPT_FULL_CMDLINE`` (a VM booted with ``preempt=full``):
    then this only checks the mode; unmarked, it fails in a VM wqlab booted. A switch at
    run time (left for a machine of ``--wqlab-target``, which we do not boot) re-patches
    every ``cond_resched()`` and ``preempt_schedule()`` call site through int3, and under
    QEMU's TCG (7.2) that now and then hangs the guest: an RCU stall and soft lockup with a CPU at
    ``asm_exc_int3``, one byte past a call site that memory holds as a plain call (a
    stale int3 run again and again, as far as we can tell), once in eight suite runs.
    Toggling the mode with both CPUs busy in the kernel (reading ``/proc/kallsyms``) hung
    a 6.1 VM within 200 toggles (after 40 in the run that counted), three runs out of three;
    the same load without the toggles ran 162 s clean.
    """

    def __init__(self, c: WqlabClient) -> None:
        self.agent = c.agent
        self.old: str | None = None

    def __enter__(self) -> preempt_full:
        if not self.agent.exists(SCHED_PREEMPT):
            # PREEMPT_RT (and a PREEMPT build) is fully preemptible already: nothing to do
            version = self.agent.succeed("uname -v")
            if "PREEMPT_RT" in version or re.search(r"\bPREEMPT\b(?!_)", version):
                return self
            # PREEMPT_DYNAMIC without SCHED_DEBUG (the debug line) has no knob to read the
            # mode back, but one booted with preempt=full runs so
            cmdline = self.agent.read("/proc/cmdline").split()
            if "PREEMPT_DYNAMIC" in version and "preempt=full" in cmdline:
                return self
            pytest.skip(f"{SCHED_PREEMPT} missing and not a fully preemptible kernel")
        text = self.agent.read(SCHED_PREEMPT)
        cur = [w.strip("()") for w in text.split() if w.startswith("(")]
        if cur == ["full"]:
            return self  # booted so (and writing the mode again would re-patch the kernel)
        cmdline = self.agent.read("/proc/cmdline")
        if re.search(r"guest_agent\.py|virtme", cmdline):  # a VM wqlab booted
            pytest.fail(
                "this test switches to full preemption: mark it PREEMPT_FULL_CMDLINE (a VM "
                "booted with preempt=full); a switch at run time can hang a TCG guest"
            )
        self.old = cur[0] if cur else None
        self.agent.write(SCHED_PREEMPT, "full")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            self.agent.write(SCHED_PREEMPT, self.old)


WQ_CPU_INTENSIVE_THRESH = "/sys/module/workqueue/parameters/cpu_intensive_thresh_us"


class hog_detection_off:  # a context manager, reads like a statement
    """Raise ``workqueue.cpu_intensive_thresh_us`` (6.5+, default 10 ms) for a block so that
    a busy-waiting item keeps its pool's concurrency, as on every kernel before 6.5; a
    no-op where the knob does not exist. Tests about something else than hog detection
    (highpri vs normal behind a hog) use it to state the same behaviour on every line."""

    def __init__(self, c: WqlabClient, thresh_us: int = 60_000_000) -> None:
        self.agent = c.agent
        self.thresh_us = thresh_us
        self.old: str | None = None

    def __enter__(self) -> hog_detection_off:
        if self.agent.exists(WQ_CPU_INTENSIVE_THRESH):
            self.old = self.agent.read(WQ_CPU_INTENSIVE_THRESH).strip()
            self.agent.write(WQ_CPU_INTENSIVE_THRESH, str(self.thresh_us))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            self.agent.write(WQ_CPU_INTENSIVE_THRESH, self.old)


SPIN_US_MAX = 1_000_000


def spin_scale(
    c: WqlabClient, wqlab_trace: TraceInstance, cpu: int, probe_us: int = 20000
) -> float:
    """How long ``spin_us`` really spins, relative to wall time, on this boot.

    The module spins on ``ktime_get()`` (it used ``udelay()``, whose boot calibration a
    loaded TCG host got 200x wrong once), so this should be close to 1; a test that needs
    a hog of a given length still measures a probe item first (trace execute_start →
    execute_end) rather than trust it, and the trace clock is what it asserts on."""
    (probe,) = new_items(c, 1)
    c.cmd("schedule_work_on", id=probe, cpu=cpu, spin_us=probe_us)
    obs = wait_runs(c, wqlab_trace, {probe: 1})
    run = obs.one(probe).run_ns
    assert run is not None
    return run / (probe_us * 1000)


def spin_for(c: WqlabClient, wqlab_trace: TraceInstance, cpu: int, ms_wanted: float) -> int:
    """``spin_us`` for a busy-wait of ``ms_wanted`` ms, once a probe item has shown that
    ``spin_us`` is wall time on this boot by the trace clock: never shorter than asked
    (longer is fine: a loaded TCG host deschedules vCPUs)."""
    probe_us = 20000
    scale = spin_scale(c, wqlab_trace, cpu, probe_us)
    assert scale >= 0.9, (
        f"spin_us={probe_us} ran {scale * probe_us / 1000:.2f} ms by the trace clock: "
        "the module's busy-wait is shorter than asked"
    )
    return max(1, min(int(ms_wanted * 1000), SPIN_US_MAX))


# the netlink plane's policy ---------------------------------------------------------------


def range_errno(c: WqlabClient, err: int) -> int:
    """The errno of a number outside its range on ``c``'s plane: the netlink policy says
    ERANGE where debugfs and ioctl say ``err`` (E2BIG, or EINVAL for cpu/block/delayed)."""
    return errno.ERANGE if c.plane == "netlink" else err


def counted_refusals(c: WqlabClient, errors: Sequence[Exception]) -> int:
    """How many of these refusals the module counts in ``cmds_failed``: all of them, but on
    the netlink plane only those it saw (its extack text starts with ``wqlab:``); the
    kernel's policy refuses the others first, and each of those must carry its text."""
    if c.plane != "netlink":
        return len(errors)
    for e in errors:
        assert str(e).split("(", 1)[-1].strip(") "), f"netlink refusal without extack: {e}"
    return sum("wqlab: " in str(e) for e in errors)
