"""Parse the text of a tracefs ``trace`` file (or ``trace_pipe`` lines) into typed events.

Pure: no I/O, no kernel. Input is text, output is frozen dataclasses.

A line looks like::

              insmod-222     [000] d..1.     8.685572: workqueue_queue_work: work struct=...
    <-- task (may hold spaces, dashes) -PID   [CPU] FLAGS  TIMESTAMP: EVENT: BODY

The workqueue event bodies differ between kernels (``workqueue_activate_work`` gained
``function=%ps `` in 6.10) and ``%ps`` of a module function reads ``name [module]`` while
the module is loaded but a raw ``0xffffffffc0...`` address after ``rmmod``: functions are
kept as a :class:`Symbol` that is either named or an unresolved address (see
:mod:`wqlab.symbols` to resolve those).

Speed: a C extension, :mod:`wqlab._fastparse` (``wqlab/_fastparse.c``, built by
``pip install -e .``), does the per-line work of :func:`_parse_into` for the common line
and hands every other line to it; without the extension, or with ``WQLAB_PURE_PARSER=1``
in the environment, the pure-Python :func:`_parse_into` parses everything (``pure=True``
asks for it per call). Both give equal events (``tests/unit/test_trace_fast.py``). In
Python the common line is split with ``str`` methods (no regex backtracking); a regex is
only the fallback for lines that do not fit the fast path. Events are built without going
through the frozen dataclass ``__init__`` (see :func:`_build`; they are slotted: a third of
the memory of an instance ``__dict__``), and the cyclic garbage
collector is paused while a whole text is parsed. ``bench/bench_parser.py`` measures both.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from types import ModuleType
from typing import Protocol, TypeVar

__all__ = [
    "ActivateWork",
    "BufferStats",
    "ExecuteEnd",
    "ExecuteStart",
    "LostEvents",
    "QueueWork",
    "Symbol",
    "SymbolResolver",
    "Trace",
    "TraceEvent",
    "UnknownEvent",
    "WqlabEvent",
    "WORK_EVENTS",
    "C_PARSER",
    "parse",
    "parse_header",
    "parse_line",
    "parse_lines",
    "parse_trace",
    "resolve_events",
    "softirq_flag",
]


# --------------------------------------------------------------------------- symbols


@dataclass(frozen=True, slots=True)
class Symbol:
    """A kernel function as ``%ps`` printed it.

    Either named (``name``, plus ``module`` for a module symbol) or, when the kernel could
    not resolve it at read time (module unloaded), only ``addr``. A resolved symbol may
    also carry ``addr`` when it was resolved from one.
    """

    name: str | None
    module: str | None = None
    addr: int | None = None

    @property
    def resolved(self) -> bool:
        return self.name is not None

    def matches(self, name: str) -> bool:
        """True for ``"ref_fn"``, ``"ref_fn [refmod]"`` or ``"0xffff..."`` forms of this symbol."""
        return name == self.name or name == str(self)

    def __str__(self) -> str:
        if self.name is None:
            return f"0x{self.addr or 0:x}"
        if self.module:
            return f"{self.name} [{self.module}]"
        return self.name

    @classmethod
    def parse(cls, text: str) -> Symbol:
        """Parse ``%ps`` output: ``name``, ``name [module]``, ``0xffffffffc0a1b2c3``."""
        text = text.strip()
        sym = _SYMBOL_CACHE.get(text)
        if sym is not None:
            return sym
        if text.startswith("0x"):
            try:
                sym = cls(None, None, int(text, 16))
            except ValueError:
                sym = cls(text)
        elif text.endswith("]") and " [" in text:
            name, _, mod = text[:-1].partition(" [")
            sym = cls(name, mod)
        else:
            sym = cls(text)
        if len(_SYMBOL_CACHE) < 65536:
            _SYMBOL_CACHE[text] = sym
        return sym


_SYMBOL_CACHE: dict[str, Symbol] = {}


class SymbolResolver(Protocol):
    """What :func:`parse` needs to name raw addresses (:class:`wqlab.symbols.SymbolMap`)."""

    def resolve_symbol(self, sym: Symbol) -> Symbol: ...


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One trace line: the common prefix plus the raw body after ``EVENT: ``."""

    task: str
    pid: int
    cpu: int
    flags: str
    ts_ns: int
    name: str
    body: str

    @property
    def ts(self) -> float:
        """Timestamp in seconds."""
        return self.ts_ns / 1e9

    @property
    def softirq(self) -> bool:
        """The event fired in softirq context (see :func:`softirq_flag`)."""
        return softirq_flag(self.flags)


def softirq_flag(flags: str) -> bool:
    """``s`` (softirq) or ``H`` (hardirq in softirq) in the hardirq/softirq column.

    The column is the third (``d.s2.``), or the fourth on a PREEMPT_RT kernel before 6.13,
    which adds a lazy need-resched column and prints seven (``d..s113``: irqs-off,
    need-resched, need-resched-lazy, hardirq/softirq, preempt, preempt-lazy, migrate).
    """
    return irq_column(flags) in ("s", "H")


def irq_column(flags: str) -> str:
    """The hardirq/softirq column of an event's flags (``.`` in a task, ``""`` if the
    flags are too short): see :func:`softirq_flag` for where it is."""
    col = 3 if len(flags) == 7 else 2
    return flags[col : col + 1]


@dataclass(frozen=True, slots=True)
class QueueWork(TraceEvent):
    """``workqueue_queue_work``: ``cpu`` is the event CPU; ``queue_cpu`` is the pool's CPU
    (``-1`` for unbound), ``req_cpu`` what the caller asked for (``WORK_CPU_UNBOUND``,
    i.e. ``NR_CPUS``, when it did not care)."""

    work: str
    function: Symbol
    workqueue: str
    req_cpu: int
    queue_cpu: int


@dataclass(frozen=True, slots=True)
class ActivateWork(TraceEvent):
    """``workqueue_activate_work``; ``function`` is ``None`` before 6.10."""

    work: str
    function: Symbol | None


@dataclass(frozen=True, slots=True)
class ExecuteStart(TraceEvent):
    work: str
    function: Symbol


@dataclass(frozen=True, slots=True)
class ExecuteEnd(TraceEvent):
    work: str
    function: Symbol


@dataclass(frozen=True, slots=True)
class WqlabEvent(TraceEvent):
    """The module's own events (``wqlab_*``), body ``key=value key=value ...``.

    Values stay strings (``work=%p`` is hex that may look decimal); use :meth:`int_field`.
    """

    fields: Mapping[str, str] = field(hash=False)

    def int_field(self, key: str) -> int:
        """A field as an integer: decimal, or ``0x``-prefixed hex (``nr=0x%02x``)."""
        v = self.fields[key]
        return int(v, 16) if v[:2] in ("0x", "0X") else int(v)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.fields.get(key, default)


@dataclass(frozen=True, slots=True)
class UnknownEvent(TraceEvent):
    """Any other event, or a workqueue event whose body did not parse; kept, not dropped."""


WORK_EVENTS: tuple[type[TraceEvent], ...] = (QueueWork, ActivateWork, ExecuteStart, ExecuteEnd)


# --------------------------------------------------------------------------- buffer info


@dataclass(frozen=True, slots=True)
class BufferStats:
    """A trace buffer's counts, from either place the kernel gives them:

    * the header of a ``trace`` file, ``# entries-in-buffer/entries-written: 36/40
      #P:2`` (:func:`parse_header`): ``entries``, ``written``, ``cpus``;
    * an instance's ``per_cpu/cpuN/stats`` summed
      (:meth:`wqlab.tracefs.TraceInstance.stats`): ``entries``, ``overruns``, ``dropped``.
    """

    entries: int
    written: int | None = None
    cpus: int | None = None
    overruns: int = 0  # per_cpu stats "overrun": events overwritten before they were read
    dropped: int = 0  # per_cpu stats "dropped events" (a buffer not in overwrite mode)

    @property
    def lost(self) -> int:
        """Events the buffer lost: overwritten before they were read (``written -
        entries`` of a header, ``overruns`` of the per-CPU stats) or dropped."""
        unread = max(0, self.written - self.entries) if self.written is not None else 0
        return unread + self.overruns + self.dropped

    @property
    def overrun(self) -> bool:
        return self.lost > 0


@dataclass(frozen=True, slots=True)
class LostEvents:
    """``CPU:1 [LOST 123 EVENTS]`` as ``trace_pipe`` reports an overrun."""

    cpu: int
    count: int


@dataclass(frozen=True)
class Trace:
    """Everything read from one trace text."""

    events: list[TraceEvent]
    stats: BufferStats | None = None
    lost: list[LostEvents] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)

    @property
    def lost_events(self) -> int:
        """Events known to be lost: ring-buffer overrun plus ``[LOST n EVENTS]`` lines."""
        n = sum(x.count for x in self.lost)
        if self.stats is not None:
            n += self.stats.lost
        return n


_STATS_RE = re.compile(r"entries-in-buffer/entries-written:\s*(\d+)/(\d+)(?:\s+#P:(\d+))?")
_LOST_RE = re.compile(r"CPU:(\d+) \[LOST (\d+) EVENTS\]")


def parse_header(text: str) -> BufferStats | None:
    """Find the entries/written header line in ``text`` (or in a single header line)."""
    m = _STATS_RE.search(text)
    if m is None:
        return None
    return BufferStats(int(m[1]), int(m[2]), int(m[3]) if m[3] else None)


# --------------------------------------------------------------------------- line parser

# Fallback for prefixes the fast path does not accept (odd spacing, latency format aside).
# Optional "(tgid)" column from options/record-tgid; optional flags (options/irq-info).
_PREFIX_RE = re.compile(
    r"\s*(?P<task>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>\S+)\s+)??(?P<ts>\d+(?:\.\d+)?):\s+(?P<name>[^:\s]+):\s?(?P<body>.*)"
)

_E = TypeVar("_E", bound=TraceEvent)

_new = object.__new__
# Each event class's field setters (slot descriptors), in field order.
_SETTERS: dict[type, tuple[Callable[[object, object], None], ...]] = {
    cls: tuple(getattr(cls, f.name).__set__ for f in fields(cls))
    for cls in (*WORK_EVENTS, WqlabEvent, UnknownEvent)
}


def _build(cls: type[_E], *values: object) -> _E:
    """Make a frozen event from its field values in order, without its ``__init__``.

    The frozen ``__init__`` goes through ``object.__setattr__`` for each field (a lookup
    and a frozen check each); the slot setters are half the cost, and events are most of
    the parse cost. The C parser fills the slots directly.
    """
    obj = _new(cls)
    for set_, v in zip(_SETTERS[cls], values, strict=True):
        set_(obj, v)
    return obj


def _ts_ns(ts: str) -> int:
    sec, _, frac = ts.partition(".")
    if len(frac) == 6:
        return int(sec + frac) * 1000
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def _slow_prefix(line: str) -> tuple[str, int, int, str, int, str, str] | None:
    """The regex fallback: ``(task, pid, cpu, flags, ts_ns, name, body)`` or ``None``."""
    m = _PREFIX_RE.match(line)
    if m is None:
        return None
    return (
        m["task"],
        int(m["pid"]),
        int(m["cpu"]),
        m["flags"] or "",
        _ts_ns(m["ts"]),
        m["name"],
        m["body"],
    )


def _symbol(text: str) -> Symbol:
    return _SYMBOL_CACHE.get(text) or Symbol.parse(text)


# Event names as printed ("name:") -> (kind, name); unknown names are not cached here.
_QUEUE, _ACTIVATE, _START, _END = 1, 2, 3, 4
_KINDS: dict[str, tuple[int, str]] = {
    "workqueue_queue_work:": (_QUEUE, "workqueue_queue_work"),
    "workqueue_activate_work:": (_ACTIVATE, "workqueue_activate_work"),
    "workqueue_execute_start:": (_START, "workqueue_execute_start"),
    "workqueue_execute_end:": (_END, "workqueue_execute_end"),
}


_INTS: dict[str, int] = {}


def _parse_into(
    lines: Iterable[str],
    events: list[TraceEvent],
    lost: list[LostEvents],
    unparsed: list[str],
) -> BufferStats | None:
    """The parser. One loop with the common case inlined: a Python call costs as much
    as the rest of a line's work, so the fast path makes none it can avoid."""
    stats: BufferStats | None = None
    append = events.append
    kinds = _KINDS
    symbols = _SYMBOL_CACHE
    ints = _INTS  # pid and "[cpu]" strings repeat: int() once each
    if len(ints) > 65536:
        ints.clear()
    build = _build
    for line in lines:
        parts = line.split(None, 5)
        # Fast path: "task-pid" "[cpu]" flags "ts:" "name:" body. A task name with a
        # space, a "(tgid)" column, no flags column or an empty body falls through.
        if (
            len(parts) == 6
            and parts[1][0] == "["
            and parts[4][-1] == ":"
            and parts[3][-1] == ":"
            and parts[3][-8:-7] == "."
        ):
            tp, cpu_s, flags, ts, name_c, body = parts
            task, _, pid_s = tp.rpartition("-")
            pid_c = ints.get(pid_s)
            cpu_c = ints.get(cpu_s)
            try:
                pid = ints[pid_s] = int(pid_s) if pid_c is None else pid_c
                cpu = ints[cpu_s] = int(cpu_s[1:-1]) if cpu_c is None else cpu_c
                ts_ns = int(ts[:-8] + ts[-7:-1]) * 1000
                kn = kinds.get(name_c)
                name = name_c[:-1] if kn is None else ""
            except ValueError:
                pre = _slow_prefix(line)
                if pre is None:
                    unparsed.append(line)
                    continue
                task, pid, cpu, flags, ts_ns, name, body = pre
                kn = kinds.get(name + ":")
        else:
            if not line or line[0] == "#":
                if stats is None and "entries-written" in line:
                    stats = parse_header(line)
                continue
            if line[-1] == "\n":
                line = line.rstrip("\r\n")
            pre = _slow_prefix(line)
            if pre is None:
                m = _LOST_RE.search(line)
                if m is not None:
                    lost.append(LostEvents(int(m[1]), int(m[2])))
                elif line.strip():
                    unparsed.append(line)
                continue
            task, pid, cpu, flags, ts_ns, name, body = pre
            kn = kinds.get(name + ":")

        obj: TraceEvent | None = None
        if kn is not None:
            kind, name = kn
            if kind == _START or kind == _END:
                # "work struct %p: function %ps"
                work, sep, fn = body.partition(": function ")
                if sep and work[:12] == "work struct ":
                    if fn[-1:] == " ":
                        fn = fn.rstrip()
                    obj = build(
                        ExecuteStart if kind == _START else ExecuteEnd,
                        task, pid, cpu, flags, ts_ns, name, body,
                        work[12:], symbols.get(fn) or _symbol(fn),
                    )  # fmt: skip
            elif kind == _QUEUE:
                # "work struct=%p function=%ps workqueue=%s req_cpu=%d cpu=%d"
                head, _, qcpu = body.rpartition(" cpu=")
                head, _, req = head.rpartition(" req_cpu=")
                head, _, wq = head.rpartition(" workqueue=")
                work, _, fn = head.partition(" function=")
                if fn and work[:12] == "work struct=":
                    try:
                        req_cpu, queue_cpu = int(req), int(qcpu)
                    except ValueError:
                        pass
                    else:
                        obj = build(
                            QueueWork, task, pid, cpu, flags, ts_ns, name, body,
                            work[12:], symbols.get(fn) or _symbol(fn), wq, req_cpu, queue_cpu,
                        )  # fmt: skip
            else:
                # 6.1: "work struct %p"; 6.10+: "work struct %p function=%ps " (trailing space)
                if body[:12] == "work struct ":
                    work, _, fn = body[12:].partition(" function=")
                    fsym: Symbol | None = None
                    if fn:
                        fn = fn.rstrip()
                        fsym = symbols.get(fn) or _symbol(fn)
                    obj = build(
                        ActivateWork, task, pid, cpu, flags, ts_ns, name, body,
                        work.strip(), fsym,
                    )  # fmt: skip
        elif name[:6] == "wqlab_":
            fields: dict[str, str] = {}
            for tok in body.split():
                k, sep, v = tok.partition("=")
                if sep:
                    fields[k] = v
            obj = build(WqlabEvent, task, pid, cpu, flags, ts_ns, name, body, fields)
        if obj is None:
            obj = build(UnknownEvent, task, pid, cpu, flags, ts_ns, name, body)
        append(obj)
    return stats


_Slow = Callable[[Iterable[str], list[TraceEvent], list[LostEvents], list[str]], BufferStats | None]


def _c_parser(slow: _Slow = _parse_into) -> ModuleType | None:
    """The C extension, configured; ``None`` if it is not built.

    ``slow`` is what it hands the lines it does not take itself to (tests count them).
    """
    try:
        from wqlab import _fastparse
    except ImportError:
        return None
    _fastparse.configure(
        queue_work=QueueWork,
        activate_work=ActivateWork,
        execute_start=ExecuteStart,
        execute_end=ExecuteEnd,
        wqlab_event=WqlabEvent,
        unknown_event=UnknownEvent,
        symbol_cache=_SYMBOL_CACHE,
        symbol_parse=Symbol.parse,
        slow=slow,
    )
    return _fastparse


_C = None if os.environ.get("WQLAB_PURE_PARSER") == "1" else _c_parser()

#: The C extension parses (``False``: not built, or ``WQLAB_PURE_PARSER=1``).
C_PARSER = _C is not None


def _parse_lines_into(
    lines: Iterable[str],
    events: list[TraceEvent],
    lost: list[LostEvents],
    unparsed: list[str],
    pure: bool,
) -> BufferStats | None:
    """:func:`_parse_into` in C if it is built and not ``pure``."""
    if pure or _C is None:
        return _parse_into(lines, events, lost, unparsed)
    stats: BufferStats | None = _C.parse_lines(lines, events, lost, unparsed)
    return stats


def parse_line(line: str, *, pure: bool = False) -> TraceEvent | None:
    """Parse one line; ``None`` for header, blank or non-event lines."""
    events: list[TraceEvent] = []
    _parse_lines_into((line.rstrip("\r\n"),), events, [], [], pure)
    return events[0] if events else None


def parse_trace(text: str, symbols: SymbolResolver | None = None, *, pure: bool = False) -> Trace:
    """Parse a whole ``trace`` text: events, buffer stats, lost-event lines, leftovers.

    ``pure=True`` uses the pure-Python parser even if the C extension is built (the
    reference the tests and the benchmark compare it with).
    """
    events: list[TraceEvent] = []
    lost: list[LostEvents] = []
    unparsed: list[str] = []
    was_enabled = gc.isenabled()
    gc.disable()  # only acyclic objects are made; avoids repeated full-heap scans
    try:
        if pure or _C is None:
            stats = _parse_into(text.splitlines(), events, lost, unparsed)
        else:
            stats = _C.parse_text(text, events, lost, unparsed)
        if symbols is not None:
            events = resolve_events(events, symbols)
        # made before the collector is back: its first allocation would scan every event
        return Trace(events, stats, lost, unparsed)
    finally:
        if was_enabled:
            gc.enable()


def parse(
    text: str, symbols: SymbolResolver | None = None, *, pure: bool = False
) -> list[TraceEvent]:
    """Parse a whole ``trace`` text into events, in file order."""
    return parse_trace(text, symbols, pure=pure).events


def parse_lines(
    lines: Iterable[str], symbols: SymbolResolver | None = None, *, pure: bool = False
) -> Iterator[TraceEvent]:
    """Parse lines lazily (e.g. from ``trace_pipe``); skips headers and non-event lines."""
    events: list[TraceEvent] = []
    lost: list[LostEvents] = []
    unparsed: list[str] = []
    for line in lines:
        _parse_lines_into((line.rstrip("\r\n"),), events, lost, unparsed, pure)
        if events:
            ev = events.pop()
            yield ev if symbols is None else _resolve_one(ev, symbols)
        lost.clear()
        unparsed.clear()


def _resolve_one(ev: _E, symbols: SymbolResolver) -> _E:
    fn = getattr(ev, "function", None)
    if isinstance(fn, Symbol) and not fn.resolved:
        named = symbols.resolve_symbol(fn)
        if named is not fn:
            return replace(ev, function=named)  # type: ignore[call-arg]
    return ev


def resolve_events(events: Iterable[_E], symbols: SymbolResolver) -> list[_E]:
    """Return ``events`` with raw-address functions named through ``symbols``."""
    return [_resolve_one(ev, symbols) for ev in events]
