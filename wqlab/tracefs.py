"""A private tracefs instance in the guest, driven through the agent.

A test reads ``/sys/kernel/tracing/instances/<name>`` with the four workqueue events
(and the module's ``wqlab:*`` events) enabled, so nothing else on the system clobbers
its buffer. The pytest plugin makes one instance per VM and re-arms it for each test
(``rearm()``: every event off, filters cleared, its events on, the buffer emptied with
tracing off): making and removing an instance costs 0.3 s each under TCG (6.1 builds
every event's tracefs files for each instance). Read it while the module is loaded:
``%ps`` of a module function is resolved when the trace is read; ``kallsyms()`` keeps the
addresses for a read after unload.

Enabling or disabling a tracepoint's first or second probe patches kernel text live
(a jump label, then the tracepoint's static call) with ``text_poke_bp()``. Under QEMU TCG
that patching of ``process_one_work()`` while another vCPU runs it ended once in
``Oops: int3`` (6.12, CI). So every event a test instance enables is first *pinned*: two
keeper instances (``wqlab_pin0/1``, tracing off, 4 kB buffers) keep it enabled for the
rest of the boot, and a test instance only ever adds or removes a third probe, which is a
pointer update, not a text patch.

One exception, for speed: the module's own events in an instance armed right after the
module's load, for a user that unloads it next (``pin_module_events=False``: the pytest
plugin's instance under the ``wqlab`` fixture). Those tracepoints are in the module's text,
and a trace instance holds no reference on the module: its unload turns them off in every
instance itself, after its exit function, and then empties every instance that ever had
one of them on (``trace_module_remove_events()``: two RCU grace periods for each of its
two buffers), the keepers too. Their only two patches, the first probe after the load and
the last one gone at the unload, come when none of the module's code runs, so pinning
would guard nothing and made each unload 0.2 s slower (two more instances emptied).

All of it is directory and file operations done by the guest agent itself, batched (no
shell: a process costs 0.25-0.6 s under TCG): ``start()``, ``rearm()`` and ``remove()``
are one round trip each.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .channel import AgentChannel
from .errors import GuestCommandError
from .trace import BufferStats
from .wait import INTERVAL, wait_for

TRACEFS = "/sys/kernel/tracing"
WQ_EVENTS = (
    "workqueue/workqueue_queue_work",
    "workqueue/workqueue_activate_work",
    "workqueue/workqueue_execute_start",
    "workqueue/workqueue_execute_end",
)
PIN_INSTANCES = ("wqlab_pin0", "wqlab_pin1")


def _write(path: str, data: str, missing_ok: bool = False) -> dict[str, Any]:
    step: dict[str, Any] = {"op": "write", "path": path, "data": data}
    if missing_ok:
        step["missing_ok"] = True
    return step


def _expedite(on: bool) -> dict[str, Any]:
    return {"expedite_rcu": True} if on else {}


def pin_steps(events: tuple[str, ...], root: str = TRACEFS) -> list[dict[str, Any]]:
    """The agent's batch steps that pin ``events`` (``system/event`` or ``system``) in the
    keepers (pure): a keeper that does not exist is made and set up (tracing off, 4 kB
    buffers), an existing one is left as it is; an event that does not exist (module not
    loaded) is left out; writing 1 to an event enabled already changes nothing."""
    for ev in events:
        if not re.fullmatch(r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+)?", ev):
            raise ValueError(f"bad event name {ev!r}")
    steps: list[dict[str, Any]] = []
    for inst in PIN_INSTANCES:
        d = f"{root}/instances/{inst}"
        setup = [_write(f"{d}/tracing_on", "0"), _write(f"{d}/buffer_size_kb", "4")]
        steps.append({"op": "mkdir", "path": d, "exist_ok": True, "then": setup})
        steps += [_write(f"{d}/events/{ev}/enable", "1", missing_ok=True) for ev in events]
    return steps


def pin_events(agent: AgentChannel, events: tuple[str, ...], root: str = TRACEFS) -> None:
    """Keep ``events`` (``system/event`` or ``system``) enabled in the keeper instances.

    Idempotent and one round trip; an event that does not exist (module not loaded) is
    left out. Later enables and disables in other instances then patch no kernel text.
    """
    agent.request("batch", steps=pin_steps(events, root))


class TraceInstance:
    """One tracefs instance. ``start()`` creates and enables it; ``rearm()`` empties and
    enables it again for its next user; ``remove()`` deletes it."""

    def __init__(
        self,
        agent: AgentChannel,
        name: str,
        buffer_kb: int = 4096,
        events: tuple[str, ...] = WQ_EVENTS,
        module_events: bool = True,
        root: str = TRACEFS,
        pin_module_events: bool = True,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ValueError(f"bad trace instance name {name!r}")
        self.agent = agent
        self.name = name
        self.root = root
        self.path = f"{root}/instances/{name}"
        self.buffer_kb = buffer_kb
        self.events = events
        self.module_events = module_events
        # False only while the module was loaded just before this arming and is unloaded
        # before the next one (see the module's docstring)
        self.pin_module_events = pin_module_events
        self.filtered: set[str] = set()  # events given a filter: cleared at the next arm

    def start(self, expedite_rcu: bool = False) -> TraceInstance:
        """Create (or reuse) the instance, size its buffer, arm it: one round trip.
        ``expedite_rcu``: the grace periods of emptying the buffer expedited (the guest
        agent's ``_ExpeditedRcu``; the harness's own VM only)."""
        self.agent.request("batch", steps=self.start_steps(), **_expedite(expedite_rcu))
        self.filtered.clear()
        return self

    def rearm(self, expedite_rcu: bool = False) -> TraceInstance:
        """Empty and arm the instance again for the next user (the pytest plugin's
        ``wqlab_trace``, once per test): the same state as ``start()`` gives, without
        making the instance anew or resizing its buffer (a removed instance is made
        again). One round trip; ``expedite_rcu`` as for ``start()``."""
        steps = self.start_steps(resize=False)
        self.agent.request("batch", steps=steps, **_expedite(expedite_rcu))
        self.filtered.clear()
        return self

    def start_steps(self, resize: bool = True) -> list[dict[str, Any]]:
        """What ``start()`` (``rearm()``: ``resize=False``) does, as the agent's batch steps
        (pure): the instance (one left by an earlier run is reused; its buffer is sized
        when ``resize`` or when it is made), the pins (the module's system is left out if
        not loaded, or if not ``pin_module_events``); then, with tracing off: every event
        of the instance off (what an earlier user enabled), the filters set through
        ``set_filter`` cleared, this instance's events on, the buffer emptied (the kernel
        waits for writers in flight), tracing on. Nothing recorded before the last two
        steps can be read after them."""
        p = self.path
        pin_module = self.module_events and self.pin_module_events
        pinned = (*self.events, "wqlab") if pin_module else self.events
        size = _write(f"{p}/buffer_size_kb", str(self.buffer_kb))
        return [
            {"op": "mkdir", "path": p, "exist_ok": True, "then": [] if resize else [size]},
            *pin_steps(pinned, self.root),
            _write(f"{p}/tracing_on", "0"),
            *([size] if resize else []),
            _write(f"{p}/events/enable", "0"),
            *(
                _write(f"{p}/events/{ev}/filter", "0", missing_ok=True)
                for ev in sorted(self.filtered)
            ),
            *(_write(f"{p}/events/{ev}/enable", "1") for ev in self.events),
            *([_write(f"{p}/events/wqlab/enable", "1", missing_ok=True)] * self.module_events),
            _write(f"{p}/trace", ""),
            _write(f"{p}/tracing_on", "1"),
        ]

    def enable_module_events(self, system: str = "wqlab", pinned: bool = False) -> bool:
        """Enable ``<system>:*`` if the module has registered them (after insmod);
        ``pinned``: the caller has pinned ``system`` already."""
        path = f"{self.path}/events/{system}/enable"
        if not self.agent.exists(path):
            return False
        if not pinned:
            pin_events(self.agent, (system,), self.root)
        self.agent.write(path, "1")
        return True

    def enable_events(self, *events: str) -> None:
        """Enable more events (``system/event``) in this instance, e.g. the kernel's
        ``timer/timer_start`` for one test; turned off when the instance is armed again.
        Pinned first, like the instance's own events (module doc): enabling the first
        probe of ``timer_start`` or removing it at the next arm would patch the timer
        code's text while other vCPUs run it. One round trip."""
        steps = pin_steps(events, self.root)
        steps += [_write(f"{self.path}/events/{ev}/enable", "1") for ev in events]
        self.agent.request("batch", steps=steps)

    def set_filter(self, event: str, expr: str) -> None:
        """An event filter, e.g. ``set_filter("workqueue/workqueue_queue_work",
        'workqueue ~ "wqlab_*"')``; cleared when the instance is armed again."""
        self.filtered.add(event)
        self.agent.write(f"{self.path}/events/{event}/filter", expr)

    def mark(self, text: str) -> None:
        """A ``trace_marker`` line in this instance (a phase mark in the trace)."""
        self.agent.write(f"{self.path}/trace_marker", text)

    def stop(self) -> None:
        self.agent.write(f"{self.path}/tracing_on", "0")

    def clear(self) -> None:
        self.agent.write(f"{self.path}/trace", "")

    def read(self) -> str:
        """The whole buffer, as text (non-consuming)."""
        return self.agent.read(f"{self.path}/trace", timeout=120)

    def stats(self) -> BufferStats:
        """The instance's ``per_cpu/cpuN/stats`` summed (``.lost``: overwritten or
        dropped events)."""
        entries = overrun = dropped = 0
        cpus = self.agent.request("listdir", path=f"{self.path}/per_cpu")
        reads = [{"op": "read", "path": f"{self.path}/per_cpu/{c}/stats"} for c in cpus]
        out = "".join(self.agent.request("batch", steps=reads))
        for key, val in re.findall(r"^(entries|overrun|dropped events): (\d+)", out, re.M):
            if key == "entries":
                entries += int(val)
            elif key == "overrun":
                overrun += int(val)
            else:
                dropped += int(val)
        return BufferStats(entries, overruns=overrun, dropped=dropped)

    def wait_for(
        self, predicate: Callable[[str], object], timeout: float = 30.0, poll: float = INTERVAL
    ) -> str:
        """Read the buffer until ``predicate(text)`` is true; return that text
        (:func:`wqlab.wait.wait_for`: a :class:`~wqlab.wait.WaitTimeout` at the deadline)."""
        text = ""

        def met() -> bool:
            nonlocal text
            text = self.read()
            return bool(predicate(text))

        def lines() -> str:
            return f" (the trace has {text.count(chr(10))} lines)"

        wait_for(f"a trace condition in {self.name}", met, timeout, poll, explain=lines)
        return text

    def remove(self) -> None:
        """Tracing off, then the instance's directory; a failure of either is ignored
        (a reader still holding the instance keeps it)."""
        steps = [_write(f"{self.path}/tracing_on", "0"), {"op": "rmdir", "path": self.path}]
        try:
            self.agent.request("batch", steps=steps)
        except GuestCommandError:
            pass

    def __enter__(self) -> TraceInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()


# The lines of /proc/kallsyms holding the bytes TAG, as ``grep -F`` prints them: a script
# for the agent's ``py`` op (a fork of the agent: no process started over 9p).
_KALLSYMS_GREP = """
import sys
tag = TAG
with open("/proc/kallsyms", "rb") as f:
    data = f.read()
out, i = [], data.find(tag)
while i >= 0:
    s = data.rfind(b"\\n", 0, i) + 1
    e = data.find(b"\\n", i)
    e = len(data) if e < 0 else e + 1
    out.append(data[s:e].rstrip(b"\\n") + b"\\n")
    i = data.find(tag, e)
sys.stdout.buffer.write(b"".join(out))
"""


def kallsyms(agent: AgentChannel, module: str) -> str:
    """The module's lines of ``/proc/kallsyms`` (root sees real addresses): those holding
    ``[module]``, read by a fork of the guest agent (``grep`` over ``sh`` started two
    processes over 9p: 2-3.4 s under TCG, once per grading load)."""
    tag = f"[{module}]".encode()
    res = agent.py(_KALLSYMS_GREP.replace("TAG", repr(tag), 1), check=False)
    return str(res["stdout"])
