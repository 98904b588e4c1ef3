"""A private tracefs instance in the guest, driven through the agent.

Each test gets ``/sys/kernel/tracing/instances/<name>`` with the four workqueue events
(and the module's ``wqlab:*`` events) enabled, so nothing else on the system clobbers
its buffer. Read it while the module is loaded: ``%ps`` of a module function is resolved
when the trace is read; ``kallsyms()`` keeps the addresses for a read after unload.

Enabling or disabling a tracepoint's first or second probe patches kernel text live
(a jump label, then the tracepoint's static call) with ``text_poke_bp()``. Under QEMU TCG
that patching of ``process_one_work()`` while another vCPU runs it ended once in
``Oops: int3`` (6.12, CI). So every event a test instance enables is first *pinned*: two
keeper instances (``wqlab_pin0/1``, tracing off, 4 kB buffers) keep it enabled for the
rest of the boot, and a test instance only ever adds or removes a third probe, which is a
pointer update, not a text patch.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .channel import AgentChannel
from .errors import GuestCommandError

TRACEFS = "/sys/kernel/tracing"
WQ_EVENTS = (
    "workqueue/workqueue_queue_work",
    "workqueue/workqueue_activate_work",
    "workqueue/workqueue_execute_start",
    "workqueue/workqueue_execute_end",
)
PIN_INSTANCES = ("wqlab_pin0", "wqlab_pin1")


def pin_events(agent: AgentChannel, events: tuple[str, ...], root: str = TRACEFS) -> None:
    """Keep ``events`` (``system/event`` or ``system``) enabled in the keeper instances.

    Idempotent and one round trip; an event that does not exist (module not loaded) is
    left out. Later enables and disables in other instances then patch no kernel text.
    """
    for ev in events:
        if not re.fullmatch(r"[A-Za-z0-9_]+(/[A-Za-z0-9_]+)?", ev):
            raise ValueError(f"bad event name {ev!r}")
    script = (
        f"for d in {' '.join(f'{root}/instances/{i}' for i in PIN_INSTANCES)}; do "
        '[ -d "$d" ] || { mkdir "$d" && echo 0 > "$d/tracing_on" '
        '&& echo 4 > "$d/buffer_size_kb"; } || exit 1; '
        f'for ev in {" ".join(events)}; do f="$d/events/$ev/enable"; '
        '[ -e "$f" ] || continue; read -r v < "$f"; '
        '[ "$v" = 1 ] || echo 1 > "$f" || exit 1; done; done'
    )
    agent.succeed(script)


@dataclass(frozen=True)
class BufferStats:
    """The instance's ``per_cpu/cpuN/stats``, summed: ``overrun`` > 0 means lost events."""

    entries: int
    overrun: int
    dropped: int


class TraceInstance:
    """One tracefs instance. ``start()`` creates and enables it; ``remove()`` deletes it."""

    def __init__(
        self,
        agent: AgentChannel,
        name: str,
        buffer_kb: int = 4096,
        events: tuple[str, ...] = WQ_EVENTS,
        module_events: bool = True,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ValueError(f"bad trace instance name {name!r}")
        self.agent = agent
        self.name = name
        self.path = f"{TRACEFS}/instances/{name}"
        self.buffer_kb = buffer_kb
        self.events = events
        self.module_events = module_events

    def start(self) -> TraceInstance:
        a = self.agent
        a.sh(f"mkdir -p {self.path}")
        a.write(f"{self.path}/tracing_on", "0")
        a.write(f"{self.path}/buffer_size_kb", str(self.buffer_kb))
        # one round trip pins them all; the module's system is left out if not loaded
        pin_events(a, (*self.events, "wqlab") if self.module_events else self.events)
        for ev in self.events:
            a.write(f"{self.path}/events/{ev}/enable", "1")
        if self.module_events:
            self.enable_module_events(pinned=True)
        a.write(f"{self.path}/trace", "")
        a.write(f"{self.path}/tracing_on", "1")
        return self

    def enable_module_events(self, system: str = "wqlab", pinned: bool = False) -> bool:
        """Enable ``<system>:*`` if the module has registered them (after insmod);
        ``pinned``: the caller has pinned ``system`` already."""
        path = f"{self.path}/events/{system}/enable"
        if not self.agent.exists(path):
            return False
        if not pinned:
            pin_events(self.agent, (system,))
        self.agent.write(path, "1")
        return True

    def set_filter(self, event: str, expr: str) -> None:
        """An event filter, e.g. ``set_filter("workqueue/workqueue_queue_work",
        'workqueue ~ "wqlab_*"')``."""
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
        entries = overrun = dropped = 0
        out = self.agent.sh(f"cat {self.path}/per_cpu/cpu*/stats", check=False)["stdout"]
        for key, val in re.findall(r"^(entries|overrun|dropped events): (\d+)", out, re.M):
            if key == "entries":
                entries += int(val)
            elif key == "overrun":
                overrun += int(val)
            else:
                dropped += int(val)
        return BufferStats(entries, overrun, dropped)

    def wait_for(self, predicate: object, timeout: float = 30.0, poll: float = 0.05) -> str:
        """Read the buffer until ``predicate(text)`` is true; return that text."""
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.read()
            if predicate(text):
                return text
            time.sleep(poll)
        raise TimeoutError(f"trace condition not met within {timeout:.0f} s")

    def remove(self) -> None:
        try:
            self.stop()
            self.agent.sh(f"rmdir {self.path}", check=False)
        except GuestCommandError:
            pass

    def __enter__(self) -> TraceInstance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()


def kallsyms(agent: AgentChannel, module: str) -> str:
    """The module's lines of ``/proc/kallsyms`` (root sees real addresses)."""
    res = agent.sh(f"grep '\\[{module}\\]' /proc/kallsyms", check=False)
    return str(res["stdout"])
