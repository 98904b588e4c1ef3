"""Lifecycle analysis on the real 6.1/6.12 refmod traces and on synthetic edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from wqlab.lifecycle import (
    Lifecycle,
    WorkerKind,
    build_lifecycles,
    by_work,
    event_counts,
    incomplete,
    is_fifo,
    lifecycles,
    max_concurrency,
    overlaps,
    worker_kind,
)
from wqlab.report import format_lifecycles, format_timeline
from wqlab.symbols import SymbolMap
from wqlab.trace import parse

DATA = Path(__file__).parent / "data"
KERNELS = ["6.1", "6.12"]


def ref(kernel: str, name: str = "trace-refmod.txt") -> list[Lifecycle]:
    return build_lifecycles(parse((DATA / kernel / name).read_text()))


@pytest.mark.parametrize("kernel", KERNELS)
def test_ordered_queue_never_overlaps_and_is_fifo(kernel: str) -> None:
    lcs = [lc for lc in ref(kernel) if lc.workqueue == "ref_ordered"]
    assert len(lcs) == 3 and all(lc.complete for lc in lcs)
    assert max_concurrency(lcs) == 1
    assert is_fifo(lcs)
    assert not any(overlaps(a, b) for a in lcs for b in lcs if a is not b)


@pytest.mark.parametrize("kernel", KERNELS)
def test_ordered_queue_activates_one_at_a_time(kernel: str) -> None:
    lcs = [lc for lc in ref(kernel) if lc.workqueue == "ref_ordered"]
    first, *rest = lcs
    assert first.activate_delay_ns is not None and first.activate_delay_ns < 1_000_000
    for prev, lc in zip(lcs, rest, strict=False):
        assert lc.activated_ns is not None and prev.ended_ns is not None
        assert lc.activated_ns >= prev.ended_ns  # inactive until the previous one finished


@pytest.mark.parametrize("kernel", KERNELS)
def test_system_wq_item_runs_on_a_bound_kworker(kernel: str) -> None:
    (lc,) = [
        lc
        for lc in lifecycles(
            parse((DATA / kernel / "trace-refmod.txt").read_text()),
            workqueue="events",
            function="ref_fn",
        )
    ]
    assert lc.worker_kind is WorkerKind.BOUND
    assert lc.queue_cpu == lc.exec_cpu and lc.queue_cpu is not None and lc.queue_cpu >= 0
    assert lc.req_cpu == 8192  # WORK_CPU_UNBOUND: the caller did not pick a CPU


@pytest.mark.parametrize("kernel", KERNELS)
def test_unbound_items_have_no_pool_cpu_and_run_on_unbound_kworkers(kernel: str) -> None:
    lcs = [lc for lc in ref(kernel) if lc.workqueue in ("ref_unbound", "ref_ordered")]
    assert len(lcs) == 6
    for lc in lcs:
        assert lc.unbound and lc.queue_cpu == -1
        assert lc.worker_kind is WorkerKind.UNBOUND
        assert lc.worker is not None and lc.worker.startswith("kworker/u")
    # queue_work_on(i % 2, unbound, ...): req_cpu records the request even though unbound
    assert [lc.req_cpu for lc in lcs if lc.workqueue == "ref_unbound"] == [0, 1, 0]
    assert {lc.req_cpu for lc in lcs if lc.workqueue == "ref_ordered"} == {8192}
    assert max_concurrency([lc for lc in lcs if lc.workqueue == "ref_unbound"]) >= 2


@pytest.mark.parametrize("kernel", KERNELS)
def test_delayed_work_is_queued_from_the_timer_softirq(kernel: str) -> None:
    (lc,) = [lc for lc in ref(kernel) if lc.function and lc.function.name == "ref_delayed_fn"]
    assert lc.queuer == "<idle>" and lc.queued_in_softirq
    assert lc.complete and lc.worker_kind is WorkerKind.BOUND
    assert lc.queue_latency_ns is not None and lc.queue_latency_ns > 0


@pytest.mark.parametrize("kernel", KERNELS)
def test_same_work_pointer_gives_one_lifecycle_per_cycle(kernel: str) -> None:
    lcs = ref(kernel)
    groups = by_work(lc for lc in lcs if lc.workqueue in ("ref_ordered", "ref_unbound"))
    assert len(groups) == 3
    for cycles in groups.values():
        assert [lc.workqueue for lc in cycles] == ["ref_ordered", "ref_unbound"]
    assert not incomplete(lcs)


def test_real_requeue_while_running_on_6_12() -> None:
    # vmstat_update 2ce1a3b9 is queued again by kworker/0:2 while it runs on kworker/1:1.
    cycles = by_work(ref("6.12"))["000000002ce1a3b9"]
    assert len(cycles) == 2
    first, second = cycles
    assert second.queued_ns is not None and first.ended_ns is not None
    assert first.started_ns is not None and first.started_ns < second.queued_ns < first.ended_ns
    assert second.started_ns is not None and second.started_ns >= first.ended_ns
    assert second.queuer == "kworker/0:2"


def test_after_rmmod_with_kallsyms_equals_loaded() -> None:
    syms = SymbolMap.from_kallsyms((DATA / "6.1" / "kallsyms-refmod.txt").read_text())
    after = build_lifecycles(
        parse((DATA / "6.1" / "trace-refmod-after-rmmod.txt").read_text(), symbols=syms)
    )
    loaded = ref("6.1")
    assert [str(lc.function) for lc in after] == [str(lc.function) for lc in loaded]
    assert (
        len(
            lifecycles(
                parse((DATA / "6.1" / "trace-refmod-after-rmmod.txt").read_text(), symbols=syms),
                function="ref_fn",
            )
        )
        == 7
    )


def test_event_counts() -> None:
    c = event_counts(parse((DATA / "6.1" / "trace-refmod.txt").read_text()))
    assert c["workqueue_queue_work"] == 9 and c["workqueue_execute_end"] == 9


# --------------------------------------------------------------------------- synthetic


def line(task: str, cpu: int, t_us: int, event: str, body: str, flags: str = ".....") -> str:
    sec, us = divmod(t_us, 1_000_000)
    return f"{task:>16} [{cpu:03d}] {flags} {sec:5d}.{us:06d}: {event}: {body}"


def q(work: str, t: int, wq: str = "wqlab_wq", cpu: int = 0, task: str = "bash-10") -> str:
    return line(
        task,
        cpu,
        t,
        "workqueue_queue_work",
        f"work struct={work} function=wqlab_fn [wqlab] workqueue={wq} req_cpu=8192 cpu={cpu}",
        "d..1.",
    )


def act(work: str, t: int, cpu: int = 0, task: str = "bash-10") -> str:
    return line(task, cpu, t, "workqueue_activate_work", f"work struct {work}", "d..1.")


def start(work: str, t: int, task: str = "kworker/0:1-17", cpu: int = 0) -> str:
    return line(
        task, cpu, t, "workqueue_execute_start", f"work struct {work}: function wqlab_fn [wqlab]"
    )


def end(work: str, t: int, task: str = "kworker/0:1-17", cpu: int = 0) -> str:
    return line(
        task, cpu, t, "workqueue_execute_end", f"work struct {work}: function wqlab_fn [wqlab]"
    )


def build(*lines: str) -> list[Lifecycle]:
    return build_lifecycles(parse("\n".join(lines)))


def test_requeue_from_inside_the_work_function() -> None:
    lcs = build(
        q("a", 100),
        act("a", 101),
        start("a", 110),
        q("a", 120, task="kworker/0:1-17"),
        act("a", 121, task="kworker/0:1-17"),
        end("a", 130),
        start("a", 140),
        end("a", 150),
    )
    assert len(lcs) == 2
    first, second = lcs
    assert (first.queued_ns, first.started_ns, first.ended_ns) == (100_000, 110_000, 130_000)
    assert (second.queued_ns, second.started_ns, second.ended_ns) == (120_000, 140_000, 150_000)
    assert second.queuer == "kworker/0:1"
    assert max_concurrency(lcs) == 1 and is_fifo(lcs)


def test_max_active_two_overlaps() -> None:
    lcs = build(
        q("a", 100),
        act("a", 100),
        q("b", 101),
        act("b", 101),
        q("c", 102),
        start("a", 110),
        start("b", 111, task="kworker/0:2-18"),
        end("a", 200),
        act("c", 200),
        start("c", 201),
        end("b", 300, task="kworker/0:2-18"),
        end("c", 400),
    )
    assert max_concurrency(lcs) == 2
    a, b, c = lcs
    assert overlaps(a, b) and overlaps(b, c) and not overlaps(a, c)
    assert c.activate_delay_ns == 98_000
    assert is_fifo(lcs)


def test_end_at_same_instant_as_start_is_not_concurrency() -> None:
    lcs = build(
        q("a", 1),
        q("b", 2),
        start("a", 10),
        end("a", 20),
        start("b", 20, task="kworker/0:2-18"),
        end("b", 30, task="kworker/0:2-18"),
    )
    assert max_concurrency(lcs) == 1
    assert not overlaps(lcs[0], lcs[1])


def test_not_fifo_when_later_item_runs_first() -> None:
    lcs = build(q("a", 1), q("b", 2), start("b", 10), end("b", 20), start("a", 30), end("a", 40))
    assert not is_fifo(lcs)


def test_missing_events() -> None:
    lcs = build(
        end("x", 5),  # the trace began while x ran
        start("y", 6),
        end("y", 7),  # queued before the trace began
        q("z", 8),  # never started
        q("w", 9),
        q("w", 10),
        start("w", 11),
        end("w", 12),  # first queue cancelled
    )
    x, y, z, w1, w2 = lcs
    assert x.started_ns is None and x.ended_ns == 5_000
    assert y.queued_ns is None and y.run_ns == 1_000 and y.function is not None
    assert incomplete(lcs) == [z, w1]
    assert w1.superseded and not w2.superseded and w2.started_ns == 11_000


def test_unknown_events_do_not_disturb_lifecycles() -> None:
    lcs = build(
        q("a", 1),
        line("bash-10", 0, 2, "sched_switch", "prev_comm=bash"),
        start("a", 3),
        end("a", 4),
    )
    assert len(lcs) == 1 and lcs[0].complete


def test_wqlab_marks_attach_to_the_running_cycle() -> None:
    lcs = build(
        q("a", 1),
        start("a", 2),
        line("kworker/0:1-17", 0, 3, "wqlab_work_run", "id=7 seq=1 work=a cpu=0"),
        end("a", 4),
    )
    assert lcs[0].item_id == 7 and lcs[0].marks[0].name == "wqlab_work_run"


@pytest.mark.parametrize(
    "task,flags,kind",
    [
        ("kworker/0:1", ".....", WorkerKind.BOUND),
        ("kworker/1:0H", ".....", WorkerKind.BOUND_HIGHPRI),
        ("kworker/u8:5", ".....", WorkerKind.UNBOUND),
        ("kworker/u9:1H", ".....", WorkerKind.UNBOUND_HIGHPRI),
        ("kworker/R-wqlab_wq", ".....", WorkerKind.RESCUER),
        ("<idle>", "..s1.", WorkerKind.BH),
        ("ksoftirqd/1", ".....", WorkerKind.BH),
        ("bash", ".....", WorkerKind.OTHER),
    ],
)
def test_worker_kind(task: str, flags: str, kind: WorkerKind) -> None:
    assert worker_kind(task, flags) is kind


def test_report_renders_table_and_timeline() -> None:
    lcs = ref("6.1")
    table = format_lifecycles(lcs)
    assert "ref_ordered" in table and "kworker/u4:1-25" in table
    assert len(table.splitlines()) == 2 + len(lcs)
    pic = format_timeline(lcs, width=40)
    rows = [r for r in pic.splitlines() if r.startswith("cpu")]
    assert [r.split()[0] for r in rows] == ["cpu0", "cpu1"]
    assert all(len(r.split("|")[1]) == 40 for r in rows)
    assert format_lifecycles([]).endswith("(no lifecycles)")
    assert format_timeline([]) == "(nothing executed)"
