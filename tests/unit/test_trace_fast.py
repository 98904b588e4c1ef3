"""The C parser (``wqlab/_fastparse.c``) gives what the pure-Python parser gives.

The pure-Python parser (``pure=True``) is the reference: every recorded trace, and hand-made
and mutated lines, must give equal events (same classes, same field values of the same
types), lost-event lines, leftovers and buffer stats. These tests need the extension and
fail without it: ``make setup`` (``pip install -e .``) or
``.venv/bin/python setup.py build_ext --inplace`` builds it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tracemalloc
from collections.abc import Iterable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from wqlab import trace
from wqlab.trace import BufferStats, LostEvents, Trace, TraceEvent

DATA = Path(__file__).parent / "data"
FILES = sorted(DATA.glob("*/*.txt"))
ROOT = Path(__file__).resolve().parents[2]


class CountingSlow:
    """The Python parser as the C parser's fallback, counting the lines handed to it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(
        self,
        lines: Iterable[str],
        events: list[TraceEvent],
        lost: list[LostEvents],
        unparsed: list[str],
    ) -> BufferStats | None:
        lines = list(lines)
        self.lines += lines
        return trace._parse_into(lines, events, lost, unparsed)


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingSlow]:
    """The C parser in use (even with ``WQLAB_PURE_PARSER=1``), its fallback counted."""
    counting = CountingSlow()
    c = trace._c_parser(counting)
    if c is None:
        pytest.fail(
            "the C extension wqlab._fastparse is not built: run 'make setup', or "
            "'.venv/bin/python setup.py build_ext --inplace'"
        )
    monkeypatch.setattr(trace, "_C", c)
    yield counting
    trace._c_parser()


def state(e: object) -> list[tuple[str, type, object]]:
    return [(f.name, type(getattr(e, f.name)), getattr(e, f.name)) for f in fields(e)]


def snapshot(t: Trace) -> tuple[Any, ...]:
    """Everything a parse gives: each event's class and its fields in order, with the
    type of each value (``1`` and ``True`` are equal, not the same)."""
    events = [(type(e), state(e)) for e in t.events]
    return events, t.stats, t.lost, t.unparsed


def assert_same(text: str) -> Trace:
    """C and Python parse ``text`` equally, whole and line by line; the C result."""
    c, py = trace.parse_trace(text), trace.parse_trace(text, pure=True)
    assert snapshot(c) == snapshot(py)
    assert c == py
    lines = text.splitlines(keepends=True)
    streamed = list(trace.parse_lines(lines))
    assert [(type(e), state(e)) for e in streamed] == [
        (type(e), state(e)) for e in trace.parse_lines(lines, pure=True)
    ]
    return c


def test_c_parser_is_used_unless_pure_is_asked_for() -> None:
    assert trace.C_PARSER is (os.environ.get("WQLAB_PURE_PARSER") != "1")


@pytest.mark.parametrize("pure,expected", [("1", "False"), ("0", "True")])
def test_wqlab_pure_parser_selects_the_python_parser(
    slow: CountingSlow, pure: str, expected: str
) -> None:
    env = dict(os.environ, WQLAB_PURE_PARSER=pure, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", "from wqlab import trace; print(trace.C_PARSER)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == expected


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_c_and_python_parse_every_recorded_file_equally(slow: CountingSlow, path: Path) -> None:
    text = path.read_text()
    t = assert_same(text)
    if path.name.startswith("trace-"):
        assert t.events and t.stats is not None and not t.unparsed
        # the C code took every event line; only the stats header went to Python
        assert [ln for ln in slow.lines if not ln.startswith("#")] == []
    assert_same(text.replace("\n", "\r\n"))
    assert_same("\n".join(ln + "  " for ln in text.splitlines()))


def test_after_unload_functions_are_the_same_raw_address_symbols(slow: CountingSlow) -> None:
    for kernel in ("6.1", "6.12"):
        events = assert_same((DATA / kernel / "trace-refmod-after-rmmod.txt").read_text()).events
        raw = {
            fn
            for e in events
            if isinstance(fn := getattr(e, "function", None), trace.Symbol) and not fn.resolved
        }
        assert raw and all(str(fn).startswith("0xffffffffc0") for fn in raw)


Q = "workqueue_queue_work: work struct=0000000012345678 function=ref_fn [refmod] workqueue=events"
PREFIX = "     kworker/0:1-17      [000] d..1.     8.686274: "

EDGE_LINES = [
    # bodies: empty, blank, trailing spaces and tabs
    PREFIX + "sched_switch:",
    PREFIX + "sched_switch: ",
    PREFIX + "sched_switch:  \t ",
    PREFIX + Q + " req_cpu=8192 cpu=0   ",
    PREFIX + Q + " req_cpu=8192 cpu=0\t",
    PREFIX + "workqueue_execute_start: work struct 00000000227b03b3: function ref_fn  ",
    PREFIX + "workqueue_execute_end: work struct 00000000227b03b3: function ref_fn\t ",
    PREFIX + "workqueue_activate_work: work struct 00000000b88daf16 function=vfree_work   ",
    PREFIX + "workqueue_activate_work: work struct   00000000b88daf16  ",
    PREFIX + "workqueue_activate_work: work struct 00000000b88daf16 function=",
    PREFIX + "workqueue_activate_work: work struct 00000000b88daf16 function=  ",
    PREFIX + "workqueue_activate_work: work struct",
    # integers int() takes or refuses
    PREFIX + Q + " req_cpu=8192 cpu=-1",
    PREFIX + Q + " req_cpu=8192 cpu=+1",
    PREFIX + Q + " req_cpu=8_192 cpu=1",
    PREFIX + Q + " req_cpu=abc cpu=1",
    PREFIX + Q + " req_cpu=8192 cpu=",
    PREFIX + Q + " req_cpu=8192 cpu=-",
    PREFIX + Q + " req_cpu=8192 cpu= 1 ",
    PREFIX + Q + " req_cpu=8192 cpu=\x1f1",
    PREFIX + Q + " req_cpu=99999999999999999999999 cpu=1",
    PREFIX + Q + " req_cpu=8192",
    PREFIX + Q + " cpu=1 req_cpu=8192",
    "  bash-1_0  [000] .....  1.000000: sched_switch: x",
    "  bash-+1  [000] .....  1.000000: sched_switch: x",
    "  bash-  [000] .....  1.000000: sched_switch: x",
    "  bash-99999999999999999999  [000] .....  1.000000: sched_switch: x",
    "  bash-1  [0x1] .....  1.000000: sched_switch: x",
    "  bash-1  [1_0] .....  1.000000: sched_switch: x",
    "  bash-1  [] .....  1.000000: sched_switch: x",
    "  bash-1  [12 .....  1.000000: sched_switch: x",
    "  bash-1  [000] .....  1.00000a: sched_switch: x",
    "  bash-1  [000] .....  +1.000000: sched_switch: x",
    "  bash-1  [000] .....  .000001: sched_switch: x",
    "  bash-1  [000] .....  1.123456789: sched_switch: x",
    "  bash-1  [000] .....  1.1: sched_switch: x",
    "  bash-1  [000] .....  123456789012.000001: sched_switch: x",
    "  bash-1  [000] .....  9999999999.999999: sched_switch: x",
    "  bash-1  [000] .....  999999999.999999: sched_switch: x",
    # prefixes for the regex fallback
    "     Web Content-4242    [001] .....     8.686287: sched_switch: x",
    "   my-task name-42    [001] .....     8.686287: sched_switch: x",
    "   a-b c-d-7-99    [001] .....     8.686287: workqueue_execute_end: work struct 1: function f",
    "     kworker/0:1-17      (   17) [001] .....     8.686287: sched_switch: x",
    "     kworker/0:1-17      [001]     8.686287: sched_switch: x",
    "     kworker/0:1-17    [000] d..1   123.000001: workqueue_activate_work: work struct ff",
    "       ktimers/1-28      [001] d..s113    23.960139: " + Q + " req_cpu=8192 cpu=1",
    "taskonly [000] ..... 1.000000: sched_switch: x",
    "#x-1 [000] d..1. 1.000000: sched_switch: a comment that looks like an event",
    # non-ASCII
    "     Ünïcødé-12      [000] .....     1.000000: sched_switch: x",
    "     名前-12      [000] .....     1.000000: sched_switch: x",
    "     task-12      [000] .....     1.000000: sched_switch: prev_comm=naïve",
    "     task-12      [000] .....\u00a01.000000: sched_switch: x",
    # bodies the workqueue parsers take apart
    PREFIX + "workqueue_execute_start: garbage",
    PREFIX + "workqueue_execute_start: work struct 1: function a: function b",
    PREFIX + "workqueue_execute_start: work struct: function f",
    PREFIX + "workqueue_execute_start: work struct : function f",
    PREFIX + "workqueue_execute_start: works struct 1: function f",
    PREFIX + "workqueue_execute_start: work struct 1: function ",
    PREFIX
    + "workqueue_queue_work: work struct=1 function=f function=g workqueue=w req_cpu=1 cpu=2",
    PREFIX + "workqueue_queue_work: work struct=1 function= workqueue=w req_cpu=1 cpu=2",
    PREFIX + "workqueue_queue_work: work struct=1 function=f workqueue=a cpu=3 req_cpu=1 cpu=2",
    PREFIX + "workqueue_queue_work: work struct=1 function=  f  workqueue=w req_cpu=1 cpu=2",
    PREFIX + "workqueue_queue_work: work struct 1 function=f workqueue=w req_cpu=1 cpu=2",
    PREFIX + "workqueue_queue_work:",
    PREFIX + "workqueue_foo: work struct 1",
    PREFIX + "workqueue_execute_startx: work struct 1: function f",
    PREFIX + "workqueue_: x",
    PREFIX + "workqueue_queue_work:: x",
    PREFIX + ": x",
    # wqlab_* events
    PREFIX + "wqlab_cmd: nr=0x0a id=3 ret=0 err=0",
    PREFIX + "wqlab_cmd: id=3 id=4 noequals =x k= a=b=c",
    PREFIX + "wqlab_:",
    PREFIX + "wqlab_x: \t id=1\t\tseq=2  ",
    PREFIX + "wqlab_x: " + " ".join(f"k{i}=v{i}" for i in range(200)),
    # very long
    PREFIX + "sched_switch: " + "x" * 100_000,
    "  " + "t" * 300 + "-1  [000] .....  1.000000: sched_switch: x",
    PREFIX + Q.replace("events", "w" * 5000) + " req_cpu=8192 cpu=0",
    PREFIX + Q.replace("ref_fn [refmod]", "f" * 5000) + " req_cpu=8192 cpu=0",
    # headers, lost events, leftovers
    "# entries-in-buffer/entries-written: 36/40   #P:2",
    "# entries-in-buffer/entries-written: 1/1",
    "# entries-written: broken",
    "CPU:1 [LOST 12 EVENTS]",
    "   CPU:0 [LOST 3 EVENTS]  ",
    "not a trace line",
    "",
    "   ",
    "\t",
    "\x1c",
]


@pytest.mark.parametrize("line", EDGE_LINES, ids=range(len(EDGE_LINES)))
def test_c_and_python_parse_edge_lines_equally(slow: CountingSlow, line: str) -> None:
    assert_same(line)
    assert_same(line + "\n")
    c, py = trace.parse_line(line), trace.parse_line(line, pure=True)
    assert (type(c), c and state(c)) == (type(py), py and state(py))


def test_c_and_python_cut_lines_equally(slow: CountingSlow) -> None:
    ev = PREFIX + "sched_switch: x"
    for sep in ("\n", "\r\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\n\r", "\r\r\n"):
        assert_same(sep.join([ev, ev, "", ev]) + sep)
    # one non-ASCII line makes the whole text take str.splitlines()
    for sep in ("\x85", "\u2028", "\u2029"):
        assert_same(sep.join([ev, ev + " é", ev]))
    assert_same(ev + "\x1f" + ev)  # whitespace, not a line break
    assert_same("")


def test_c_and_python_parse_a_whole_mixed_text_equally(slow: CountingSlow) -> None:
    text = "\n".join(EDGE_LINES + [(DATA / "6.12" / "trace-refmod.txt").read_text()])
    t = assert_same(text)
    assert t.stats == BufferStats(36, 40, 2)  # the first stats header counts
    assert t.lost == [LostEvents(1, 12), LostEvents(0, 3)]


def test_c_and_python_parse_mutated_lines_equally(slow: CountingSlow) -> None:
    rng = random.Random(4)
    base = [
        ln
        for p in FILES
        if p.name.startswith("trace-")
        for ln in p.read_text().splitlines()
        if ln and not ln.startswith("#")
    ] + [PREFIX + "wqlab_work_run: id=3 seq=17 work=0000000012345678 cpu=0"]
    alphabet = " \t-:.[]=_0123456789abcx#\r\x0bé"
    lines = []
    for _ in range(3000):
        chars = list(rng.choice(base))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(chars) + 1)
            op = rng.randrange(3)
            if op == 0:
                chars.insert(i, rng.choice(alphabet))
            elif chars and op == 1:
                del chars[min(i, len(chars) - 1)]
            elif chars:
                chars[min(i, len(chars) - 1)] = rng.choice(alphabet)
        lines.append("".join(chars))
    assert_same("\n".join(lines))
    assert_same("\n".join(ln for ln in lines if ln.isascii()))


def test_c_parser_raises_what_the_python_parser_raises(slow: CountingSlow) -> None:
    from wqlab import _fastparse

    good = PREFIX + "sched_switch: x"
    for parser in (_fastparse.parse_lines, trace._parse_into):
        with pytest.raises(AttributeError):
            parser([good, 1, good], [], [], [])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _fastparse.parse_text(b"bytes", [], [], [])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _fastparse.parse_text("", (), [], [])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _fastparse.configure(queue_work=trace.QueueWork)  # type: ignore[call-arg]


def test_c_parser_refuses_classes_whose_slots_it_cannot_fill(slow: CountingSlow) -> None:
    """The C parser writes an event's slots at their offsets: a class with an instance
    ``__dict__``, or with a field it does not know, is refused, and nothing changes."""
    from dataclasses import dataclass

    from wqlab import _fastparse

    @dataclass(frozen=True)
    class WithDict(trace.TraceEvent):  # a subclass of a slotted class without slots=True
        pass

    @dataclass(frozen=True, slots=True)
    class Extra(trace.TraceEvent):
        extra: int

    classes = {
        "queue_work": trace.QueueWork,
        "activate_work": trace.ActivateWork,
        "execute_start": trace.ExecuteStart,
        "execute_end": trace.ExecuteEnd,
        "wqlab_event": trace.WqlabEvent,
        "unknown_event": trace.UnknownEvent,
    }
    rest = {
        "symbol_cache": trace._SYMBOL_CACHE,
        "symbol_parse": trace.Symbol.parse,
        "slow": trace._parse_into,
    }
    for bad, why in ((WithDict, "is not a slotted class"), (Extra, "has 8 fields, the parser")):
        with pytest.raises(TypeError, match=why):
            _fastparse.configure(**{**classes, "unknown_event": bad}, **rest)
    assert_same(PREFIX + "sched_switch: still parsed by the configured classes")


def test_c_parser_keeps_no_references(slow: CountingSlow) -> None:
    from wqlab import _fastparse

    text = "\n".join(EDGE_LINES[:-20] + [(DATA / "6.12" / "trace-refmod.txt").read_text()] * 5)
    bad = [PREFIX + "sched_switch: x"] * 50 + [None]

    def once() -> None:
        trace.parse_trace(text)
        slow.lines.clear()
        try:
            _fastparse.parse_lines(bad, [], [], [])  # type: ignore[arg-type]
        except AttributeError:
            pass  # the error path must let go of its objects too
        else:
            raise AssertionError("no AttributeError")

    for _ in range(3):  # fill the caches
        once()
    tracemalloc.start()
    try:
        once()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(30):
            once()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes kept after 30 parses"
