"""Delayed work: the timer queues the item no earlier than its delay (HZ-aware), a
cancel before expiry means it never runs, mod_delayed_work moves the deadline."""

from __future__ import annotations

import pytest
from wqtest import (
    TIMER_EVENTS,
    ArmedTimer,
    ExecuteEnd,
    QueueWork,
    armed_timer,
    ms,
    new_items,
    online_cpus,
    wait_runs,
)

from wqlab.client import WqlabClient
from wqlab.tracefs import TraceInstance

pytestmark = pytest.mark.vm

# The timer may fire late (TCG, 2 shared host cores), never early: the upper bound is loose.
LATE_NS = 2_000_000_000


def jiffies_for(c: WqlabClient, delay_ms: int) -> int:
    """msecs_to_jiffies(delay_ms): the kernel rounds up to whole ticks (from HZ itself: a
    tick in whole ns is short of its length when HZ does not divide 10^9, e.g. 300)."""
    return -(-delay_ms * int(c.features()["hz"]) // 1000)


def timer_expected(what: str, want: int, t: ArmedTimer, waited: int) -> str:
    """The expectation in jiffies, the kernel's own clock for timers. (In ns from the
    command it holds only while the guest's ticks keep time: a loaded host can delay a
    vCPU's tick, jiffies then catch up in a jump, and a timer of 5 jiffies fired 13.7 ms
    after its 20 ms command.)"""
    return (
        f"{what}: a timer of {want} jiffies (timer_start's timeout {want}, or {want - 1} if a "
        "tick came between arming and the event) fired at its expiry or later, then "
        "queue_work from the timer (softirq); observed timeout="
        f"{t.timeout} expires={t.expires} fired at {t.fired}, queued {ms(waited)} after the "
        "command"
    )


def _queued_after_cmd(obs, item: int, cmd: str) -> int:  # type: ignore[no-untyped-def]
    """ns from the (last) command returning to the item's (last) queue_work event."""
    q = obs.of(QueueWork, item)[-1].ts_ns
    return q - obs.cmd_ns(cmd, item)


def check_timer(  # type: ignore[no-untyped-def]
    obs, c: WqlabClient, item: int, cmd: str, delay_ms: int, what: str
) -> tuple[int, str]:
    """Assert that the (last) ``cmd`` on ``item`` armed a timer of msecs_to_jiffies
    (``delay_ms``) jiffies, that it fired at its expiry or later, and that the item was
    queued after it fired; return the ns from the command to that queue_work and the
    expectation, for the caller's own checks."""
    want = jiffies_for(c, delay_ms)
    t = armed_timer(obs, cmd, item)
    waited = _queued_after_cmd(obs, item, cmd)
    expected = timer_expected(what, want, t, waited)
    assert t.timeout in (want, want - 1), obs.explain(expected)
    assert t.fired >= t.expires, obs.explain(expected)
    assert obs.of(QueueWork, item)[-1].ts_ns >= t.fired_ns, obs.explain(expected)
    return waited, expected


# Not whole_vm: the lower bound is in jiffies, which a loaded host cannot make early, and
# the upper bound (LATE_NS) has seconds of room
@pytest.mark.parametrize("delay_ms", [20, 100])
def test_delayed_work_is_queued_no_earlier_than_its_delay(
    wqlab: WqlabClient, wqlab_trace: TraceInstance, delay_ms: int
) -> None:
    (item,) = new_items(wqlab, 1, delayed=True)
    wqlab_trace.enable_events(*TIMER_EVENTS)
    assert wqlab.cmd("schedule_delayed_work", id=item, delay_ms=delay_ms).ret == 1
    pending = wqlab.cmd("delayed_work_pending", id=item).ret
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    lc = obs.one(item)
    waited, expected = check_timer(
        obs, wqlab, item, "schedule_delayed_work", delay_ms, f"delay {delay_ms} ms"
    )
    # pending until the timer queues it; on a loaded host (parallel VMs) the delay may
    # be over before the next command runs: then the item was queued before it
    queued_before = obs.of(QueueWork, item)[-1].ts_ns < obs.cmd_ns("delayed_work_pending", item)
    assert pending == 1 or queued_before, obs.explain("pending until queued")
    assert waited <= delay_ms * 1_000_000 + LATE_NS, obs.explain(expected)
    assert lc.queued_in_softirq, obs.explain(expected)
    assert lc.workqueue == "events", obs.explain(expected)


def test_delayed_work_with_zero_delay_is_queued_at_once_by_the_caller(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    (item,) = new_items(wqlab, 1, delayed=True)
    assert wqlab.cmd("schedule_delayed_work", id=item, delay_ms=0).ret == 1
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    lc = obs.one(item)
    expected = "delay 0: queued directly in the caller's context, before the command returned"
    assert not lc.queued_in_softirq, obs.explain(expected)
    assert lc.queued_ns is not None
    assert lc.queued_ns <= obs.cmd_ns("schedule_delayed_work", item), obs.explain(expected)


def test_delayed_work_cancelled_before_expiry_never_runs(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    victim, sentinel = new_items(wqlab, 2, delayed=True)
    # 2 s: the cancel must come before the expiry, also on a loaded host (parallel VMs)
    assert wqlab.cmd("schedule_delayed_work", id=victim, delay_ms=2000).ret == 1
    assert wqlab.cmd("cancel_delayed_work", id=victim).ret == 1
    assert wqlab.cmd("delayed_work_pending", id=victim).ret == 0
    # a later deadline: once the sentinel ran, the victim's deadline has long passed
    wqlab.cmd("schedule_delayed_work", id=sentinel, delay_ms=2300)
    obs = wait_runs(wqlab, wqlab_trace, {sentinel: 1}, extra=[victim])
    expected = "no event at all for the cancelled item; the sentinel ran"
    assert obs.lcs(victim) == [], obs.explain(expected)
    assert wqlab.work(victim)["runs"] == "0"


def test_cancel_delayed_work_sync_before_expiry_returns_true_and_it_never_runs(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    victim, sentinel = new_items(wqlab, 2, delayed=True)
    wqlab.cmd("schedule_delayed_work", id=victim, delay_ms=2000)  # see above: a loaded host
    assert wqlab.cmd("cancel_delayed_work_sync", id=victim).ret == 1
    wqlab.cmd("schedule_delayed_work", id=sentinel, delay_ms=2300)
    obs = wait_runs(wqlab, wqlab_trace, {sentinel: 1}, extra=[victim])
    assert obs.lcs(victim) == [], obs.explain("the cancelled item never queued nor ran")


def test_mod_delayed_work_brings_the_deadline_forward(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    (item,) = new_items(wqlab, 1, delayed=True)
    wqlab_trace.enable_events(*TIMER_EVENTS)
    assert wqlab.cmd("queue_delayed_work", wq="system", id=item, delay_ms=30000).ret == 1
    assert wqlab.cmd("mod_delayed_work", wq="system", id=item, delay_ms=50).ret == 1
    obs = wait_runs(wqlab, wqlab_trace, {item: 1}, timeout=20)
    what = "mod_delayed_work to 50 ms (not 30 s)"
    waited, expected = check_timer(obs, wqlab, item, "mod_delayed_work", 50, what)
    assert waited <= 50_000_000 + LATE_NS, obs.explain(expected)
    assert obs.count(QueueWork, item) == 1, obs.explain(expected)


def test_mod_delayed_work_pushes_the_deadline_back(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    (item,) = new_items(wqlab, 1, delayed=True)
    wqlab_trace.enable_events(*TIMER_EVENTS)
    # the mod must come before the first deadline, also on a loaded host (parallel VMs)
    wqlab.cmd("queue_delayed_work", wq="system", id=item, delay_ms=1500)
    assert wqlab.cmd("mod_delayed_work", wq="system", id=item, delay_ms=2500).ret == 1
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    what = "mod_delayed_work to 2500 ms (not 1500)"
    _, expected = check_timer(obs, wqlab, item, "mod_delayed_work", 2500, what)
    assert obs.count(QueueWork, item) == 1, obs.explain(expected)


def test_mod_delayed_work_on_an_idle_item_queues_it_and_returns_false(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    (item,) = new_items(wqlab, 1, delayed=True)
    assert wqlab.cmd("mod_delayed_work", wq="system", id=item, delay_ms=10).ret == 0
    obs = wait_runs(wqlab, wqlab_trace, {item: 1})
    assert obs.count(ExecuteEnd, item) == 1, obs.explain("one run")


def test_schedule_delayed_work_on_runs_on_that_cpu(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    cpus = online_cpus(wqlab)
    items = new_items(wqlab, len(cpus), delayed=True)
    for cpu, item in zip(cpus, items, strict=True):
        assert wqlab.cmd("schedule_delayed_work_on", id=item, cpu=cpu, delay_ms=20).ret == 1
    obs = wait_runs(wqlab, wqlab_trace, {i: 1 for i in items})
    for cpu, item in zip(cpus, items, strict=True):
        lc = obs.one(item)
        expected = f"id={item} queued for CPU {cpu} by its timer and run there"
        assert lc.req_cpu == cpu and lc.exec_cpu == cpu, obs.explain(expected)


def test_flush_delayed_work_runs_a_waiting_timer_item_now(
    wqlab: WqlabClient, wqlab_trace: TraceInstance
) -> None:
    (item,) = new_items(wqlab, 1, delayed=True)
    wqlab.cmd("schedule_delayed_work", id=item, delay_ms=30000)
    # ret is 1 when flush_work() found the item queued or running; 0 when it had already
    # run (6.12, 2 vCPUs: the item queued on the other CPU may end before flush looks)
    assert wqlab.result(wqlab.submit("flush_delayed_work", id=item), timeout=20).ret in (0, 1)
    obs = wait_runs(wqlab, wqlab_trace, {item: 1}, timeout=5)
    lc = obs.one(item)
    expected = "queued by flush_delayed_work itself (timer cancelled), run, before it returned"
    assert not lc.queued_in_softirq, obs.explain(expected)
    assert lc.ended_ns is not None
    assert lc.ended_ns <= obs.cmd_ns("flush_delayed_work", item), obs.explain(expected)
