"""Parse the text of a tracefs ``trace`` file (or ``trace_pipe`` lines) into typed events.

Pure: no I/O, no kernel. Input is text, output is frozen dataclasses.

A line looks like::

              insmod-222     [000] d..1.     8.685572: workqueue_queue_work: work struct=...
    <-- task (may hold spaces, dashes) -PID   [CPU] FLAGS  TIMESTAMP: EVENT: BODY

The workqueue event bodies differ between kernels (``workqueue_activate_work`` gained
``function=%ps `` in 6.10) and ``%ps`` of a module function reads ``name [module]`` while
the module is loaded but a raw ``0xffffffffc0...`` address after ``rmmod``: functions are
kept as a :class:`Symbol` that is either named or an unresolved address (see
:mod:`harness.symbols` to resolve those).

Speed: the common line is split with ``str`` methods (no regex backtracking); a regex is
only the fallback for lines that do not fit the fast path. Events are built without going
through the frozen dataclass ``__init__`` (see :func:`_build`), and the cyclic garbage
collector is paused while a whole text is parsed. ``bench/bench_parser.py`` measures it.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

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
    "parse",
    "parse_header",
    "parse_line",
    "parse_lines",
    "parse_trace",
    "resolve_events",
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
    """What :func:`parse` needs to name raw addresses (:class:`harness.symbols.SymbolMap`)."""

    def resolve_symbol(self, sym: Symbol) -> Symbol: ...


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
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
        """The event fired in softirq context (``s``/``S`` in the hardirq/softirq column)."""
        return len(self.flags) >= 3 and self.flags[2] in "sH"


@dataclass(frozen=True)
class QueueWork(TraceEvent):
    """``workqueue_queue_work``: ``cpu`` is the event CPU; ``queue_cpu`` is the pool's CPU
    (``-1`` for unbound), ``req_cpu`` what the caller asked for (``WORK_CPU_UNBOUND``,
    i.e. ``NR_CPUS``, when it did not care)."""

    work: str
    function: Symbol
    workqueue: str
    req_cpu: int
    queue_cpu: int


@dataclass(frozen=True)
class ActivateWork(TraceEvent):
    """``workqueue_activate_work``; ``function`` is ``None`` before 6.10."""

    work: str
    function: Symbol | None


@dataclass(frozen=True)
class ExecuteStart(TraceEvent):
    work: str
    function: Symbol


@dataclass(frozen=True)
class ExecuteEnd(TraceEvent):
    work: str
    function: Symbol


@dataclass(frozen=True)
class WqlabEvent(TraceEvent):
    """The module's own events (``wqlab_*``), body ``key=value key=value ...``.

    Values stay strings (``work=%p`` is hex that may look decimal); use :meth:`int_field`.
    """

    fields: Mapping[str, str] = field(hash=False)

    def int_field(self, key: str) -> int:
        return int(self.fields[key], 0)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.fields.get(key, default)


@dataclass(frozen=True)
class UnknownEvent(TraceEvent):
    """Any other event, or a workqueue event whose body did not parse; kept, not dropped."""


WORK_EVENTS: tuple[type[TraceEvent], ...] = (QueueWork, ActivateWork, ExecuteStart, ExecuteEnd)


# --------------------------------------------------------------------------- buffer info


@dataclass(frozen=True, slots=True)
class BufferStats:
    """``# entries-in-buffer/entries-written: 36/36   #P:2`` of a ``trace`` file."""

    entries: int
    written: int
    cpus: int | None = None

    @property
    def lost(self) -> int:
        """Events overwritten in the ring buffer before they were read."""
        return max(0, self.written - self.entries)

    @property
    def overrun(self) -> bool:
        return self.written > self.entries


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

_new = object.__new__
_setattr = object.__setattr__

_E = TypeVar("_E", bound=TraceEvent)


def _build(cls: type[_E], values: dict[str, Any]) -> _E:
    """Make a frozen event without its generated ``__init__``.

    The frozen ``__init__`` pays one ``object.__setattr__`` per field; installing the
    instance dict in one go builds events about 2.5x faster, which is most of the parse
    cost. ``values`` must hold exactly the dataclass fields.
    """
    obj = _new(cls)
    _setattr(obj, "__dict__", values)
    return obj


def _ts_ns(ts: str) -> int:
    sec, _, frac = ts.partition(".")
    if len(frac) == 6:
        return int(sec + frac) * 1000
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def _split_prefix(line: str) -> tuple[str, int, int, str, int, str, str] | None:
    """Split ``TASK-PID [CPU] FLAGS TS: NAME: BODY``; ``None`` when it is not an event line."""
    # Fast path, one split: "task-pid", "[cpu]", flags, "ts:", "name:", body. A task
    # name with a space, a "(tgid)" column or a missing flags column falls through.
    parts = line.split(None, 5)
    if len(parts) >= 5:
        tp, cpu_s, flags, ts, name = parts[0], parts[1], parts[2], parts[3], parts[4]
        if cpu_s[0] == "[" and ts[-1] == ":" and name[-1] == ":":
            task, _, pid_s = tp.rpartition("-")
            sec, dot, frac = ts.partition(".")
            if len(frac) == 7 and pid_s.isdigit():
                try:
                    return (
                        task,
                        int(pid_s),
                        int(cpu_s[1:-1]),
                        flags,
                        int(sec + frac[:-1]) * 1000,
                        name[:-1],
                        parts[5] if len(parts) == 6 else "",
                    )
                except ValueError:
                    pass
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


def _queue_work(d: dict[str, Any], body: str) -> QueueWork | None:
    # "work struct=%p function=%ps workqueue=%s req_cpu=%d cpu=%d"; %ps may hold a space.
    head, _, cpu = body.rpartition(" cpu=")
    head, _, req = head.rpartition(" req_cpu=")
    head, _, wq = head.rpartition(" workqueue=")
    work, _, fn = head.partition(" function=")
    if not (fn and work.startswith("work struct=")):
        return None
    sym = _SYMBOL_CACHE.get(fn) or Symbol.parse(fn)
    d["work"] = work[12:]
    d["function"] = sym
    d["workqueue"] = wq
    d["req_cpu"] = int(req)
    d["queue_cpu"] = int(cpu)
    return _build(QueueWork, d)


def _activate_work(d: dict[str, Any], body: str) -> ActivateWork | None:
    # 6.1: "work struct %p"; 6.10+: "work struct %p function=%ps " (trailing space).
    if not body.startswith("work struct "):
        return None
    work, _, fn = body[12:].partition(" function=")
    d["work"] = work.strip()
    if fn:
        fn = fn.rstrip()
        d["function"] = _SYMBOL_CACHE.get(fn) or Symbol.parse(fn)
    else:
        d["function"] = None
    return _build(ActivateWork, d)


def _execute(cls: type[ExecuteStart] | type[ExecuteEnd], d: dict[str, Any], body: str) -> Any:
    # "work struct %p: function %ps"
    work, sep, fn = body.partition(": function ")
    if not (sep and work.startswith("work struct ")):
        return None
    fn = fn.rstrip()
    d["work"] = work[12:]
    d["function"] = _SYMBOL_CACHE.get(fn) or Symbol.parse(fn)
    return _build(cls, d)


def _wqlab(d: dict[str, Any], body: str) -> WqlabEvent:
    fields: dict[str, str] = {}
    for tok in body.split():
        k, sep, v = tok.partition("=")
        if sep:
            fields[k] = v
    d["fields"] = fields
    return _build(WqlabEvent, d)


def _event(line: str) -> TraceEvent | None:
    pre = _split_prefix(line)
    if pre is None:
        return None
    task, pid, cpu, flags, ts_ns, name, body = pre
    d: dict[str, Any] = {
        "task": task,
        "pid": pid,
        "cpu": cpu,
        "flags": flags,
        "ts_ns": ts_ns,
        "name": name,
        "body": body,
    }
    ev: TraceEvent | None
    try:
        if name == "workqueue_execute_start":
            ev = _execute(ExecuteStart, d, body)
        elif name == "workqueue_execute_end":
            ev = _execute(ExecuteEnd, d, body)
        elif name == "workqueue_activate_work":
            ev = _activate_work(d, body)
        elif name == "workqueue_queue_work":
            ev = _queue_work(d, body)
        elif name.startswith("wqlab_"):
            ev = _wqlab(d, body)
        else:
            ev = None
    except ValueError:
        ev = None
    if ev is None:
        d = {k: d[k] for k in ("task", "pid", "cpu", "flags", "ts_ns", "name", "body")}
        ev = _build(UnknownEvent, d)
    return ev


def parse_line(line: str) -> TraceEvent | None:
    """Parse one line; ``None`` for header, blank or non-event lines."""
    line = line.rstrip("\r\n")
    if not line or line[0] == "#":
        return None
    return _event(line)


def _parse(lines: Iterable[str], symbols: SymbolResolver | None) -> Trace:
    events: list[TraceEvent] = []
    unparsed: list[str] = []
    lost: list[LostEvents] = []
    stats: BufferStats | None = None
    append = events.append
    event = _event
    for line in lines:
        if not line:
            continue
        if line[0] == "#":
            if stats is None and "entries-written" in line:
                stats = parse_header(line)
            continue
        if line[-1] == "\n":
            line = line.rstrip("\r\n")
        ev = event(line)
        if ev is not None:
            append(ev)
            continue
        m = _LOST_RE.search(line)
        if m is not None:
            lost.append(LostEvents(int(m[1]), int(m[2])))
        elif line.strip():
            unparsed.append(line)
    if symbols is not None:
        events = resolve_events(events, symbols)
    return Trace(events, stats, lost, unparsed)


def parse_trace(text: str, symbols: SymbolResolver | None = None) -> Trace:
    """Parse a whole ``trace`` text: events, buffer stats, lost-event lines, leftovers."""
    was_enabled = gc.isenabled()
    gc.disable()  # only acyclic objects are made; avoids repeated full-heap scans
    try:
        return _parse(text.splitlines(), symbols)
    finally:
        if was_enabled:
            gc.enable()


def parse(text: str, symbols: SymbolResolver | None = None) -> list[TraceEvent]:
    """Parse a whole ``trace`` text into events, in file order."""
    return parse_trace(text, symbols).events


def parse_lines(
    lines: Iterable[str], symbols: SymbolResolver | None = None
) -> Iterator[TraceEvent]:
    """Parse lines lazily (e.g. from ``trace_pipe``); skips headers and non-event lines."""
    for line in lines:
        ev = parse_line(line)
        if ev is None:
            continue
        if symbols is not None:
            ev = _resolve_one(ev, symbols)
        yield ev


def _resolve_one(ev: _E, symbols: SymbolResolver) -> _E:
    fn = getattr(ev, "function", None)
    if isinstance(fn, Symbol) and not fn.resolved:
        named = symbols.resolve_symbol(fn)
        if named is not fn:
            d = dict(vars(ev))
            d["function"] = named
            return _build(type(ev), d)
    return ev


def resolve_events(events: Iterable[_E], symbols: SymbolResolver) -> list[_E]:
    """Return ``events`` with raw-address functions named through ``symbols``."""
    return [_resolve_one(ev, symbols) for ev in events]
