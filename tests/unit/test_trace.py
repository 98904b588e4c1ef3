"""The trace parser on real 6.1/6.12 captures and on synthetic edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from wqlab.trace import (
    ActivateWork,
    BufferStats,
    ExecuteEnd,
    ExecuteStart,
    QueueWork,
    Symbol,
    UnknownEvent,
    WqlabEvent,
    parse,
    parse_header,
    parse_line,
    parse_lines,
    parse_trace,
)

DATA = Path(__file__).parent / "data"
KERNELS = ["6.1", "6.12"]


def read(kernel: str, name: str) -> str:
    return (DATA / kernel / name).read_text()


@pytest.mark.parametrize("kernel", KERNELS)
def test_reference_trace_parses_every_line(kernel: str) -> None:
    t = parse_trace(read(kernel, "trace-refmod.txt"))
    assert t.stats is not None and t.stats.entries == len(t.events)
    assert not t.unparsed
    assert not any(isinstance(e, UnknownEvent) for e in t.events)
    kinds = {type(e) for e in t.events}
    assert kinds == {QueueWork, ActivateWork, ExecuteStart, ExecuteEnd}
    ts = [e.ts_ns for e in t.events]
    assert ts == sorted(ts)


def test_queue_work_fields_on_6_1() -> None:
    ev = parse(read("6.1", "trace-refmod.txt"))[0]
    assert isinstance(ev, QueueWork)
    assert (ev.task, ev.pid, ev.cpu, ev.flags) == ("insmod", 222, 0, "d..1.")
    assert ev.ts_ns == 8_685_572_000 and ev.ts == pytest.approx(8.685572)
    assert ev.work == "00000000086bc489"
    assert ev.function == Symbol("ref_fn", "refmod")
    assert (ev.workqueue, ev.req_cpu, ev.queue_cpu) == ("events", 8192, 0)


def test_activate_work_has_no_function_on_6_1_and_one_on_6_12() -> None:
    a61 = next(e for e in parse(read("6.1", "trace-refmod.txt")) if isinstance(e, ActivateWork))
    a612 = next(e for e in parse(read("6.12", "trace-refmod.txt")) if isinstance(e, ActivateWork))
    assert a61.function is None and a61.work == "00000000086bc489"
    assert a612.function == Symbol("delayed_vfree_work") and a612.work == "00000000b88daf16"


def test_idle_task_and_softirq_flag() -> None:
    line = (
        "          <idle>-0       [000] dNs2.     8.694937: workqueue_queue_work: work struct="
        "000000009893ddab function=ref_delayed_fn [refmod] workqueue=events req_cpu=8192 cpu=0"
    )
    ev = parse_line(line)
    assert isinstance(ev, QueueWork)
    assert ev.task == "<idle>" and ev.pid == 0 and ev.softirq


@pytest.mark.parametrize(
    "flags,softirq",
    [
        ("dNs2.", True),  # 6.1/6.12 generic: irqs-off, need-resched, hardirq/softirq, ...
        ("d..2.", False),
        ("d.H1.", True),
        ("d.h1.", False),
        ("d..s113", True),  # 6.1 PREEMPT_RT: a lazy need-resched column comes before it
        ("d...111", False),
        (".......", False),
    ],
)
def test_softirq_column_on_generic_and_preempt_rt_kernels(flags: str, softirq: bool) -> None:
    # from a 6.1.0-56-rt-amd64 guest: the delayed item's timer fires in a ktimers thread
    line = (
        f"       ktimers/1-28      [001] {flags}    23.960139: workqueue_queue_work: work struct="
        "00000000d4c73c64 function=wqlab_dwork_fn [wqlab] workqueue=events req_cpu=8192 cpu=1"
    )
    ev = parse_line(line)
    assert isinstance(ev, QueueWork) and ev.task == "ktimers/1" and ev.flags == flags
    assert ev.softirq is softirq


def test_after_rmmod_functions_are_raw_addresses() -> None:
    ev = parse(read("6.12", "trace-refmod-after-rmmod.txt"))
    q = next(e for e in ev if isinstance(e, QueueWork) and e.workqueue == "ref_ordered")
    assert not q.function.resolved and q.function.addr == 0xFFFFFFFFC0754030
    assert str(q.function) == "0xffffffffc0754030"
    a = next(e for e in ev if isinstance(e, ActivateWork) and e.work == q.work)
    assert a.function == q.function


@pytest.mark.parametrize(
    "line,task,pid",
    [
        ("    kworker/u4:1-25      [001] .....     8.686287: ", "kworker/u4:1", 25),
        (" systemd-journal-123     [001] .....     8.686287: ", "systemd-journal", 123),
        ("     Web Content-4242    [001] .....     8.686287: ", "Web Content", 4242),
        ("           a-b-7-99      [001] .....     8.686287: ", "a-b-7", 99),
        ("     kworker/0:1-17      (   17) [001] .....     8.686287: ", "kworker/0:1", 17),
    ],
)
def test_task_names_with_spaces_and_dashes(line: str, task: str, pid: int) -> None:
    ev = parse_line(line + "workqueue_execute_end: work struct 00000000227b03b3: function ref_fn")
    assert isinstance(ev, ExecuteEnd)
    assert (ev.task, ev.pid, ev.cpu, ev.work) == (task, pid, 1, "00000000227b03b3")


def test_old_four_char_flags() -> None:
    ev = parse_line(
        "     kworker/0:1-17    [000] d..1   123.000001: "
        "workqueue_activate_work: work struct ffff8880"
    )
    assert isinstance(ev, ActivateWork)
    assert ev.flags == "d..1" and ev.ts_ns == 123_000_001_000 and ev.work == "ffff8880"


def test_wqlab_event_fields_are_generic_key_values() -> None:
    ev = parse_line(
        "     kworker/0:1-17      [000] .....     9.1: wqlab_work_run: "
        "id=3 seq=17 work=0000000012345678 cpu=0"
    )
    assert isinstance(ev, WqlabEvent)
    assert ev.name == "wqlab_work_run"
    assert ev.fields == {"id": "3", "seq": "17", "work": "0000000012345678", "cpu": "0"}
    assert ev.int_field("seq") == 17 and ev.get("work") == "0000000012345678"
    cmd = parse_line("  bash-10  [000] .....  9.100000: wqlab_cmd: nr=0x0a id=3 ret=0 err=0")
    assert isinstance(cmd, WqlabEvent) and cmd.int_field("nr") == 10
    assert ev.ts_ns == 9_100_000_000


def test_unknown_events_and_malformed_bodies_are_kept() -> None:
    text = (
        "  bash-1  [000] .....  1.000000: sched_switch: prev_comm=bash prev_pid=1\n"
        "  bash-1  [000] .....  1.000001: workqueue_execute_start: garbage\n"
        "not a trace line\n"
    )
    t = parse_trace(text)
    assert [type(e) for e in t.events] == [UnknownEvent, UnknownEvent]
    assert t.events[0].body == "prev_comm=bash prev_pid=1"
    assert t.events[1].name == "workqueue_execute_start"
    assert t.unparsed == ["not a trace line"]


def test_header_and_overrun() -> None:
    assert parse_header("# entries-in-buffer/entries-written: 36/36   #P:2") == BufferStats(
        36, 36, 2
    )
    s = parse_header("# entries-in-buffer/entries-written: 100/250   #P:4")
    assert s is not None and s.overrun and s.lost == 150
    t = parse_trace("CPU:1 [LOST 12 EVENTS]\n")
    assert t.lost_events == 12 and t.stats is None


def test_parse_lines_streams_with_newlines() -> None:
    lines = read("6.12", "trace-refmod.txt").splitlines(keepends=True)
    streamed = list(parse_lines(lines))
    assert streamed == parse(read("6.12", "trace-refmod.txt"))


def test_symbol_parse_forms() -> None:
    assert Symbol.parse("ref_fn [refmod]") == Symbol("ref_fn", "refmod")
    assert Symbol.parse("do_free_init") == Symbol("do_free_init")
    assert Symbol.parse("0xffffffffc07b4010") == Symbol(None, None, 0xFFFFFFFFC07B4010)
    assert Symbol("ref_fn", "refmod").matches("ref_fn")
    assert Symbol("ref_fn", "refmod").matches("ref_fn [refmod]")


def test_events_are_frozen() -> None:
    ev = parse(read("6.1", "trace-refmod.txt"))[0]
    with pytest.raises(AttributeError):
        ev.task = "x"  # type: ignore[misc]
    assert hash(ev) == hash(parse(read("6.1", "trace-refmod.txt"))[0])


def test_buffer_stats_count_what_was_lost_from_a_header_or_the_per_cpu_stats() -> None:
    header = parse_header("# entries-in-buffer/entries-written: 36/40   #P:2")
    assert header == BufferStats(36, 40, 2) and header.lost == 4 and header.overrun
    per_cpu = BufferStats(120, overruns=3, dropped=1)  # TraceInstance.stats()
    assert per_cpu.lost == 4 and per_cpu.overrun
    assert not BufferStats(36, 36, 2).overrun and BufferStats(7).lost == 0
